"""`wms serve start`: put a model (the champion, a registry URI or an .onnx file) behind the local TorchServe.

The same LocalTorchServe.deploy as the local release asset: start TorchServe when it is down, else register the
version beside the running one and switch to it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from wms.core.local_state import MODEL_NAME, StateLayout
from wms.registry.model_registry import CHAMPION, ModelRegistry
from wms.serving.batch import unknown_model
from wms.serving.torchserve import LocalTorchServe, build_archive


@dataclass(frozen=True)
class ServableModel:
    onnx_path: Path
    version: str
    source: str


def resolve_servable(model_ref: str, layout: StateLayout) -> ServableModel:
    """The ONNX file and version behind 'champion', models:/<name>@<alias>, models:/<name>/<n> or a .onnx path."""
    if model_ref == CHAMPION or model_ref.startswith("models:/"):
        registry = ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME)
        uri = registry.alias_uri(CHAMPION) if model_ref == CHAMPION else model_ref
        info = registry.describe(registry.resolve_version(uri))
        folder = layout.serving / "models" / f"{info.version}-{info.run_id}"
        onnx_path = folder / "model.onnx"
        if not onnx_path.exists():
            registry.download(info.onnx_uri, folder / "download").replace(onnx_path)
        return ServableModel(onnx_path, info.version, f"{uri} (run {info.run_id})")
    path = Path(model_ref)
    if path.suffix == ".onnx" and path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return ServableModel(path, f"file-{digest[:12]}", str(path.resolve()))
    raise unknown_model(model_ref)


def serve_model(model: ServableModel, server: LocalTorchServe) -> str:
    """Serve the model on the local TorchServe; return the inference URL once it answers."""
    if not server.is_up() and server.running():
        raise RuntimeError(
            f"the TorchServe of {server.home} runs, but not on port {server.inference_port}: "
            "stop it first (`wms serve stop`) to move it to another port"
        )
    archive = build_archive(model.onnx_path, MODEL_NAME, model.version, server.model_store)
    server.deploy(archive, MODEL_NAME, model.version)
    return f"{server.inference_url}/predictions/{MODEL_NAME}"
