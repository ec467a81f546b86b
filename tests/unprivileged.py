"""Running a command as a user without root's right to read every file, so that file permissions are real."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

NOBODY = 65534


def as_unprivileged(argv: list[str]) -> list[str]:
    """argv as it must run for an unreadable file to be unreadable: under `setpriv` as nobody when we are root."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


def shared_folder() -> Path:
    """A fresh folder that the unprivileged user can read (pytest's tmp_path is root's alone); remove it after."""
    folder = Path(tempfile.mkdtemp(prefix="wms-unprivileged-"))
    folder.chmod(0o755)
    return folder


def copy_readable(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    for path in [destination, *destination.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return destination
