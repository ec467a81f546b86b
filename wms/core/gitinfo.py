"""What Git says about the project's code: the commit checked out and the files a range of commits changed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from wms.core.project import PROJECT_ROOT


class GitError(RuntimeError):
    """git failed; the message holds its own explanation."""


def head_sha(repo: Path = PROJECT_ROOT) -> str:
    return _git(repo, "rev-parse", "HEAD").strip()


def current_git_sha(repo: Path = PROJECT_ROOT) -> str:
    """The commit checked out, with '-dirty' when tracked files changed; 'unknown' outside a Git checkout."""
    try:
        sha = head_sha(repo)
        dirty = _git(repo, "status", "--porcelain", "--untracked-files=no").strip()
    except GitError:
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def changed_files(repo: Path, old: str, new: str) -> list[str]:
    """Paths that differ between two commits."""
    return [line for line in _git(repo, "diff", "--name-only", old, new).splitlines() if line]


def _git(repo: Path, *args: str) -> str:
    try:
        completed = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    except OSError as error:
        raise GitError(f"git is not available: {error}") from error
    if completed.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {repo}: {completed.stderr.strip()}")
    return completed.stdout
