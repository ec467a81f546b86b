"""Versioning a data folder with DVC: track it, push it to a remote, read its content hash.

DVC is driven through its command line (`python -m dvc`), its stable interface; its Python API is internal.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

CREDENTIAL_ERRORS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden")
STALE_UPLOAD_AGE_S = 3600
"""DVC uploads a file to a local remote under a temporary name, then renames it: a temporary file nobody has written
to for this long was left by a push that was killed (a live push keeps writing to its own)."""


class DvcError(RuntimeError):
    """A DVC command failed; the message holds DVC's own explanation."""


@dataclass(frozen=True)
class DvcRepository:
    """A DVC repository without Git (its pointers live beside the data) with one default remote."""

    root: Path
    remote_url: str
    remote_name: str = "storage"
    endpoint_url: str | None = None

    def ensure(self) -> None:
        """Create the repository and point its default remote at `remote_url` (idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".dvc").is_dir():
            self._dvc("init", "--no-scm", "--quiet")
            self._dvc("config", "core.analytics", "false")
        self._dvc("remote", "add", "--default", "--force", self.remote_name, self.remote_url)
        if self.endpoint_url:
            self._dvc("remote", "modify", self.remote_name, "endpointurl", self.endpoint_url)

    def track(self, relative: str) -> str:
        """`dvc add` then `dvc push` a folder inside the repository; return its DVC hash.

        When the push fails, the pointer file is put back as it was, so pointer and remote never disagree.
        """
        pointer = self.pointer_path(relative)
        before = pointer.read_text() if pointer.exists() else None
        self.prune_stale_uploads()
        try:
            self._dvc("add", "--quiet", relative)
            self._dvc("push", str(pointer.relative_to(self.root)))
        except DvcError:
            if before is None:
                pointer.unlink(missing_ok=True)
            else:
                pointer.write_text(before)
            raise
        return self.data_version(relative)

    def prune_stale_uploads(self) -> list[Path]:
        """Remove the temporary uploads that killed pushes left in a local remote; return them. Objects are never
        half-written (DVC renames a whole upload into place); an S3 remote has no temporary files."""
        remote = Path(self.remote_url)
        if "://" in self.remote_url or not remote.is_dir():
            return []
        cutoff = time.time() - STALE_UPLOAD_AGE_S
        stale = [path for path in remote.glob("files/*/*/.*.tmp") if path.stat().st_mtime < cutoff]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def pull(self, relative: str) -> None:
        """Fetch a tracked folder's files from the remote into the workspace, as its pointer says."""
        self._dvc("pull", str(self.pointer_path(relative).relative_to(self.root)))

    def restore(self, relative: str, pointer: str) -> Path:
        """Put a tracked folder on this machine from its pointer's text and the remote (a fresh pod, a new machine)."""
        self.ensure()
        path = self.pointer_path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(pointer)
        self.pull(relative)
        return self.root / relative

    def pointer_path(self, relative: str) -> Path:
        return self.root / f"{relative.rstrip('/')}.dvc"

    def data_version(self, relative: str) -> str:
        """The DVC hash of a tracked folder (its .dir md5 without the suffix)."""
        pointer = self.pointer_path(relative)
        if not pointer.exists():
            raise DvcError(f"{relative} is not tracked by DVC in {self.root}: run the dataset asset first")
        return pointer_version(pointer)

    def _dvc(self, *args: str) -> str:
        return run_dvc(self.root, self.remote_url, *args)


def pointer_version(pointer: Path) -> str:
    """The data version a .dvc pointer file names (the md5 of its folder, without '.dir')."""
    try:
        outs = yaml.safe_load(pointer.read_text())["outs"]
        return outs[0]["md5"].removesuffix(".dir")
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as error:
        raise DvcError(f"{pointer} is not a readable DVC pointer: {error}") from error


def pull_pointer(pointer: Path) -> Path:
    """Check out the data a .dvc pointer names, in its own DVC repository (a Git checkout); return the folder."""
    pointer_version(pointer)
    run_dvc(pointer.parent, "configured for that repository", "pull", pointer.name)
    return pointer.with_suffix("")


def run_dvc(cwd: Path, remote: str, *args: str) -> str:
    """Run `python -m dvc ARGS` in cwd; a failure raises DvcError with DVC's own words (and advice for credentials)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    completed = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, env=env)
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip()
        advice = ""
        if any(word in detail for word in CREDENTIAL_ERRORS):
            advice = f"the remote {remote} refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. "
        raise DvcError(f"{advice}dvc {' '.join(args)} failed in {cwd}: {detail}")
    return completed.stdout


def tracked_files(root: Path) -> list[Path]:
    """The files of a data folder that make up its content: everything under it but hidden files."""
    return sorted(
        p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def stat_fingerprint(root: Path) -> str:
    """A cheap fingerprint from names, sizes and modification times: it changes whenever a file may have changed."""
    digest = hashlib.sha256()
    for path in tracked_files(root):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def directory_md5(root: Path) -> str:
    """The hash DVC gives this folder when it tracks it (its .dir md5, computed the way dvc-data does).

    A file this process may not read counts by its size and change time instead: one such file must neither stop
    the data sensor nor hide its becoming readable (validation rejects it with the reason)."""
    entries = [{"md5": _file_md5(path), "relpath": path.relative_to(root).as_posix()} for path in tracked_files(root)]
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except PermissionError:
        stat = path.stat()
        return f"unreadable-{stat.st_size}-{stat.st_ctime_ns}"
    return digest.hexdigest()
