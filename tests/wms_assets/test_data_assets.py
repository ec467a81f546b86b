"""The data assets on a real DVC repository: what the watched record allows is what the data set holds."""

import shutil

import dagster as dg

from wms.data.watched import folder_source, record_watched
from wms_assets.assets.data import dataset, raw_images
from wms_assets.resources import DvcStorage, RawImageSource


def materialize(tmp_path, state_file):
    resources = {
        "raw_source": RawImageSource(state_file=str(state_file), synthetic_dir=str(tmp_path / "synthetic")),
        "dvc": DvcStorage(repo_dir=str(tmp_path / "repo"), remote_url=str(tmp_path / "remote")),
    }
    result = dg.materialize([raw_images, dataset], resources=resources, raise_on_error=False)
    return result, result.output_for_node("dataset") if result.success else None


def in_splits(made) -> set[str]:
    return {name for names in made.splits.values() for name in names}


def test_a_link_out_of_the_watched_folder_is_rejected_unless_the_record_allows_it(synthetic_root, tmp_path):
    folder = tmp_path / "watched"
    shutil.copytree(synthetic_root, folder)
    photo = sorted((folder / "images").iterdir())[0]
    photo.rename(tmp_path / "elsewhere.jpg")
    photo.symlink_to(tmp_path / "elsewhere.jpg")
    state_file = tmp_path / "watched.json"

    record_watched(state_file, folder_source(folder, {}, "test"))
    result, made = materialize(tmp_path, state_file)
    assert result.success
    assert made.validation["rejected"][0]["file"] == f"images/{photo.name}"
    assert photo.name not in in_splits(made)

    record_watched(state_file, folder_source(folder, {}, "test", allow_outside_links=True))
    result, made = materialize(tmp_path, state_file)
    assert result.success and not made.validation["rejected"]
    assert photo.name in in_splits(made)
    assert not (tmp_path / "repo" / "data" / "images" / photo.name).is_symlink(), "the data set holds the file itself"
