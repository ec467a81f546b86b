"""The real `wms` command, held at a chosen point inside one stage so that a test can kill -9 it exactly there.

    python -m tests.killpoints POINT -- WMS ARGUMENTS...   (in the project root)

At POINT the process writes $WMS_KILLPOINT_DIR/POINT.json (what it was doing) and waits for the test's SIGKILL;
nothing is faked: up to the point every stage ran as `wms` runs it. The point inside DVC's push, a child process,
is reached through tests/killpoint_site/sitecustomize.py, which every Python process this one starts imports.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

MARKER_DIR_VARIABLE = "WMS_KILLPOINT_DIR"
POINT_VARIABLE = "WMS_KILLPOINT"
SITE = Path(__file__).with_name("killpoint_site")


def hold(point: str, **detail) -> None:
    """Say where this process is, then wait to be killed."""
    marker = Path(os.environ[MARKER_DIR_VARIABLE]) / f"{point}.json"
    partial = marker.with_suffix(".partial")
    partial.write_text(json.dumps({"point": point, "pid": os.getpid(), **detail}))
    partial.replace(marker)
    while True:
        time.sleep(60)


def _sendfile_held(point: str, wanted: Callable[[str], bool], nth: int) -> None:
    """Hold in the middle of the nth file copy (shutil's sendfile loop) whose destination `wanted` accepts: half of
    its bytes are written."""
    real = os.sendfile
    seen: set[str] = set()

    def sendfile(out_fd, in_fd, offset, count):
        destination = os.readlink(f"/proc/self/fd/{out_fd}")
        if wanted(destination):
            seen.add(destination)
            if len(seen) == nth:
                size = os.fstat(in_fd).st_size
                written = real(out_fd, in_fd, offset, max(1, size // 2))
                hold(point, file=destination, written=written, size=size)
        return real(out_fd, in_fd, offset, count)

    os.sendfile = sendfile


def _after(point: str, owner, name: str, when: Callable[..., bool] = lambda *args, **kwargs: True, **detail) -> None:
    """Hold right after owner.name returns, on a call that `when` accepts."""
    real = getattr(owner, name)

    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        if when(*args, **kwargs):
            hold(point, call=name, **detail)
        return result

    setattr(owner, name, wrapped)


def _before(point: str, owner, name: str) -> None:
    """Hold when owner.name is called, before it runs."""

    def wrapped(*args, **kwargs):
        hold(point, call=name)

    setattr(owner, name, wrapped)


def data_copy() -> None:
    _sendfile_held("data-copy", lambda path: "/dvc/data/water-meters/images/" in path, nth=20)


def dvc_push() -> None:
    os.environ[POINT_VARIABLE] = "dvc-push"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")]))


def training() -> None:
    import torch

    saved: list[str] = []

    def after_third_checkpoint(obj, destination, *args, **kwargs) -> bool:
        if str(destination).endswith(".last.pt.partial"):
            saved.append(str(destination))
        return len(saved) == 3

    _after("training", torch, "save", after_third_checkpoint)


def registration() -> None:
    from mlflow import MlflowClient

    _after("registration", MlflowClient, "create_model_version")


def promotion() -> None:
    from mlflow import MlflowClient

    _after("promotion", MlflowClient, "set_registered_model_alias", lambda self, name, alias, version: alias == "champion")


def packaging() -> None:
    _sendfile_held("packaging", lambda path: "/serving/archives/" in path, nth=1)


def release_start() -> None:
    from wms.serving.torchserve import LocalTorchServe

    _before("release-start", LocalTorchServe, "_wait_for_keys")


def release_switch() -> None:
    from wms.serving.torchserve import LocalTorchServe

    _before("release-switch", LocalTorchServe, "_smoke_test_beside")


POINTS: dict[str, Callable[[], None]] = {
    "data-copy": data_copy,
    "dvc-push": dvc_push,
    "training": training,
    "registration": registration,
    "promotion": promotion,
    "packaging": packaging,
    "release-start": release_start,
    "release-switch": release_switch,
}
"""Where `wms run` can be held, in the order its stages run (release-start: TorchServe started, the front door not
yet; release-switch: the new version registered beside the serving one, not yet smoke-tested)."""


def main(argv: list[str]) -> None:
    point, separator, *arguments = argv
    if point not in POINTS or separator != "--":
        sys.exit(f"usage: python -m tests.killpoints {{{','.join(POINTS)}}} -- WMS ARGUMENTS...")
    POINTS[point]()
    from wms_cli.main import main as wms

    wms(arguments)


if __name__ == "__main__":
    main(sys.argv[1:])
