"""What a model reference names: 'champion', an MLflow URI or an exported .onnx file, resolved to the ONNX file that
is run. `wms predict`, `wms serve start` and the serving_artifacts asset all come here, so a photo gets the same mask
from each: the exported ONNX model, never the PyTorch weights beside it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from wms.core.local_state import MODEL_NAME
from wms.registry.model_registry import CHAMPION, ModelRegistry


@dataclass(frozen=True)
class ResolvedModel:
    onnx_path: Path
    version: str
    source: str
    """What the reference led to, for people: the URI and its run, or the file."""
    trained_on: str = ""
    data_version: str = ""
    run_id: str = ""


def onnx_of_version(registry: ModelRegistry, version: str, models_dir: Path) -> ResolvedModel:
    """The registered version's ONNX model, downloaded once into models_dir/<version>-<run id>/ (a registered version
    never changes, so the download is reused)."""
    info = registry.describe(version)
    folder = models_dir / f"{info.version}-{info.run_id}"
    onnx_path = folder / "model.onnx"
    if not onnx_path.exists():
        registry.download(info.onnx_uri, folder / "download").replace(onnx_path)
    source = f"models:/{registry.model_name}/{info.version} (run {info.run_id})"
    return ResolvedModel(onnx_path, info.version, source, info.trained_on, info.data_version, info.run_id)


def resolve_model(model_ref: str, registry: ModelRegistry, models_dir: Path) -> ResolvedModel:
    """'champion', models:/<name>@<alias>, models:/<name>/<n> or the path of an .onnx file; LookupError when the
    reference leads nowhere."""
    if model_ref == CHAMPION or model_ref.startswith("models:/"):
        uri = registry.alias_uri(CHAMPION) if model_ref == CHAMPION else model_ref
        resolved = onnx_of_version(registry, registry.resolve_version(uri), models_dir)
        return replace(resolved, source=f"{uri} (run {resolved.run_id})")
    path = Path(model_ref)
    if path.suffix == ".onnx" and path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return ResolvedModel(path, f"file-{digest[:12]}", str(path.resolve()))
    raise unknown_model(model_ref)


def unknown_model(model_ref: str) -> LookupError:
    """The error for a reference that names no model, saying what to give instead."""
    return LookupError(
        f"no model at {model_ref!r}: give 'champion', an MLflow URI such as models:/{MODEL_NAME}@champion, "
        "or the path of an exported .onnx file"
    )
