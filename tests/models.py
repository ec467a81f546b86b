"""Models made for tests: what they find is known in advance, so what is drawn or served from it can be checked."""

from pathlib import Path

import torch

from wms.export import export_onnx

SIDE = 64


class CentreWindow(torch.nn.Module):
    """Finds a window in the middle of every photo (the middle third of the rows, the middle half of the columns)."""

    def __init__(self) -> None:
        super().__init__()
        logits = torch.full((1, 1, SIDE, SIDE), -8.0)
        logits[..., SIDE // 3 : 2 * SIDE // 3, SIDE // 4 : 3 * SIDE // 4] = 8.0
        self.register_buffer("window", logits)

    def forward(self, x):
        return self.window.expand(x.shape[0], -1, -1, -1) + 0 * x[:, :1]


def centre_window_onnx(path: Path) -> Path:
    return export_onnx(CentreWindow(), SIDE, path, {})


def wrong_input_model(path):
    """An ONNX model that loads but cannot take a photo: it wants one channel, the handler sends three."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "wrong-input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 64, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.append(onnx.StringStringEntryProto(key="wms.image_size", value="64"))
    onnx.save(model, str(path))
    return path
