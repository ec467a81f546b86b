"""`wms serve start`: put a model (the champion, a registry URI or an .onnx file) behind the local TorchServe.

The same LocalTorchServe.deploy as the local release asset: start TorchServe when it is down, else register the
version beside the running one and switch to it.
"""

from __future__ import annotations

from wms.core.local_state import MODEL_NAME, StateLayout
from wms.registry.model_reference import ResolvedModel, resolve_model
from wms.registry.model_registry import ModelRegistry
from wms.serving.torchserve import LocalTorchServe, build_archive


def resolve_local_model(model_ref: str, layout: StateLayout) -> ResolvedModel:
    """The ONNX file and version behind a model reference (wms.registry.model_reference), from the local registry."""
    return resolve_model(model_ref, ModelRegistry(layout.mlflow_tracking_uri, MODEL_NAME), layout.serving / "models")


def serve_model(model: ResolvedModel, server: LocalTorchServe) -> str:
    """Serve the model on the local TorchServe; return the inference URL once it answers."""
    if not server.is_up() and server.running():
        raise RuntimeError(
            f"the TorchServe of {server.home} runs, but not on port {server.inference_port}: "
            "stop it first (`wms serve stop`) to move it to another port"
        )
    archive = build_archive(model.onnx_path, MODEL_NAME, model.version, server.model_store)
    server.deploy(archive, MODEL_NAME, model.version)
    return f"{server.inference_url}/predictions/{MODEL_NAME}"
