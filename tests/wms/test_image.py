"""The serving image's build context: what it holds, and that the handler runs from it without torch."""

import subprocess
import sys
import sysconfig

from wms.image import HANDLER_MODULES, prepare_build_context
from wms.torchserve import SERVING_DIR


def test_the_context_holds_the_model_the_handler_modules_and_the_server_config(tmp_path):
    archive = tmp_path / "wms-unet-v3.mar"
    archive.write_bytes(b"archive")
    context = prepare_build_context(archive, "wms-unet", "3", tmp_path / "context")
    names = {path.relative_to(context.path).as_posix() for path in context.path.rglob("*") if path.is_file()}
    assert {"Dockerfile", "requirements.txt", "config.properties", "nginx.conf", "start.sh", "model-store/wms-unet.mar"} <= names
    assert "listen 0.0.0.0:8080;" in (context.path / "nginx.conf").read_text()
    assert "inference_address=http://127.0.0.1:8086" in (context.path / "config.properties").read_text()
    assert {f"python/wms/{module}" for module in HANDLER_MODULES} <= names
    assert context.digest == prepare_build_context(archive, "wms-unet", "3", tmp_path / "again").digest


PROBE = """
import importlib.util, sys
sys.path[:0] = [sys.argv[1], sys.argv[3]]  # run with -S: site-packages without its .pth files (no editable wms)
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("the serving image has no torch")
sys.meta_path.insert(0, NoTorch())
spec = importlib.util.spec_from_file_location("handler", sys.argv[2])
sys.modules["handler"] = module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import wms
print(wms.__file__)
"""


def test_the_handler_imports_only_what_the_context_carries_and_never_torch(tmp_path):
    archive = tmp_path / "m.mar"
    archive.write_bytes(b"")
    context = prepare_build_context(archive, "m", "1", tmp_path / "context")
    python = context.path / "python"
    result = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, str(python), str(SERVING_DIR / "handler.py"), sysconfig.get_paths()["purelib"]],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(python))
