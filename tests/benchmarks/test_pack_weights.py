import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import pack_weights


def test_weights_come_back_in_parts_and_join_to_the_same_state_dict(tmp_path, monkeypatch):
    monkeypatch.setattr(pack_weights, "PART_BYTES", 4096)
    state = {"conv.weight": torch.randn(64, 32), "bn.num_batches_tracked": torch.tensor(7)}
    torch.save(state, tmp_path / "best.pt")

    pack_weights.pack(tmp_path / "best.pt", tmp_path / "out")
    pack_weights.join(tmp_path / "out", tmp_path / "joined.pt")

    joined = torch.load(tmp_path / "joined.pt", weights_only=True)
    assert len(list((tmp_path / "out").glob("weights.part*"))) > 1
    assert joined["conv.weight"].dtype == torch.float32
    torch.testing.assert_close(joined["conv.weight"], state["conv.weight"], atol=2e-3, rtol=1e-3)
    assert joined["bn.num_batches_tracked"].item() == 7


def test_a_truncated_part_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pack_weights, "PART_BYTES", 4096)
    torch.save({"weight": torch.randn(64, 32)}, tmp_path / "best.pt")
    pack_weights.pack(tmp_path / "best.pt", tmp_path / "out")
    part = tmp_path / "out" / "weights.part0"
    part.write_bytes(part.read_bytes()[:100])

    with pytest.raises(SystemExit, match="fetch them again"):
        pack_weights.join(tmp_path / "out", tmp_path / "joined.pt")
