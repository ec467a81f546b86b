import pytest

from wms.core.files import copy_atomically, written_atomically


def test_a_write_that_fails_leaves_the_old_file_and_no_partial_one(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_text("the old model")
    with pytest.raises(OSError, match="disk full"), written_atomically(target) as partial:
        partial.write_text("half of the new")
        raise OSError("disk full")
    assert target.read_text() == "the old model"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx"]


def test_a_copy_replaces_the_target_in_one_rename_from_a_hidden_partial_file(tmp_path):
    source, target = tmp_path / "new.mar", tmp_path / "store" / "wms-unet-v2.mar"
    target.parent.mkdir()
    (target.parent / ".wms-unet-v2.mar.partial").write_bytes(b"left by a copy that was killed")
    source.write_bytes(b"archive" * 1000)
    copy_atomically(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert [path.name for path in target.parent.iterdir()] == ["wms-unet-v2.mar"]
