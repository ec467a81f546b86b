"""The serving image: its build context (pinned to one model version) and, when configured, its build and push."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wms.front_door import render_config
from wms.torchserve import MAX_REQUEST_BYTES, SERVING_DIR

PACKAGE_DIR = Path(__file__).resolve().parent
HANDLER_MODULES = ("__init__.py", "imaging.py", "geometry.py", "predict.py", "uploads.py", "service_metrics.py")
"""The parts of the wms package that the handler imports (numpy, Pillow, SciPy and prometheus-client; no torch)."""


class ImageBuildError(RuntimeError):
    """buildah could not build or push the image; the message holds its output."""


@dataclass(frozen=True)
class BuildContext:
    path: Path
    digest: str
    model_name: str
    model_version: str


def prepare_build_context(archive: Path, model_name: str, model_version: str, destination: Path) -> BuildContext:
    """Lay out everything `docker build` or `buildah bud` needs for this model version; digest its content."""
    if destination.exists():
        shutil.rmtree(destination)
    (destination / "model-store").mkdir(parents=True)
    (destination / "python" / "wms").mkdir(parents=True)
    for name in ("Dockerfile", "requirements.txt", "config.properties", "start.sh"):
        shutil.copy2(SERVING_DIR / name, destination / name)
    front_door = render_config(
        Path("/tmp/wms-front-door"), "0.0.0.0", 8080, 8086, MAX_REQUEST_BYTES, daemon=True, model=(model_name, model_version)
    )
    (destination / "nginx.conf").write_text(front_door)
    for module in HANDLER_MODULES:
        shutil.copyfile(PACKAGE_DIR / module, destination / "python" / "wms" / module)
    shutil.copyfile(archive, destination / "model-store" / f"{model_name}.mar")
    return BuildContext(destination, content_digest(destination), model_name, model_version)


def content_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()}"


def build_and_push(context: BuildContext, repository: str, tls_verify: bool = True) -> str:
    """Build the image with buildah and push it to repository:<version>; return the pushed manifest digest."""
    reference = f"{repository}:{context.model_name}-v{context.model_version}"
    digest_file = context.path.parent / f"{context.path.name}.digest"
    _buildah(
        "bud",
        "--isolation",
        "chroot",
        "--build-arg",
        f"MODEL_NAME={context.model_name}",
        "--build-arg",
        f"MODEL_VERSION={context.model_version}",
        "-t",
        reference,
        str(context.path),
    )
    _buildah(
        "push", f"--tls-verify={str(tls_verify).lower()}", "--digestfile", str(digest_file), reference, f"docker://{reference}"
    )
    return digest_file.read_text().strip()


def _buildah(*args: str) -> None:
    completed = subprocess.run(["buildah", *args], capture_output=True, text=True)
    if completed.returncode != 0:
        raise ImageBuildError(f"buildah {args[0]} failed: {completed.stderr.strip()[-2000:]}")
