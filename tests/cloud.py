"""Offline checks of the cloud parts, shared by the tests: the EKS version, kubernetes-validate and checkov."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def eks_version() -> str:
    """The Kubernetes version Terraform sets for EKS (terraform/variables.tf), e.g. '1.31'."""
    with open(ROOT / "terraform" / "variables.tf") as source:
        variables = hcl2.load(source)["variable"]
    for block in variables:
        for name, body in block.items():
            if unquote(name) == "kubernetes_version":
                return unquote(body["default"])
    raise AssertionError("terraform/variables.tf declares no kubernetes_version")


def unquote(value: str) -> str:
    """python-hcl2 8 keeps the quotes of names and strings ('"1.31"'): drop them."""
    return value[1:-1] if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"' else value


def kubernetes_validate(files: list[Path]) -> None:
    """kubernetes-validate --strict at the EKS version; fails the test with its output."""
    command = [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", f"{eks_version()}.0", *map(str, files)]
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def checkov(directory: Path, framework: str, skips: list[str] | None = None, quiet: bool = True) -> dict:
    """checkov's JSON report on a folder (checkov runs from .venv-checkov: it pins packages that clash with ours).

    quiet=False keeps the passed and skipped checks in the report (--quiet leaves only the failed ones).
    """
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make install` (scripts/install.sh)")
    command = [str(CHECKOV), "-d", str(directory), "--framework", framework, "--skip-download", "-o", "json"]
    if quiet:
        command.append("--quiet")
    if skips:
        command += ["--skip-check", ",".join(skips)]
    completed = subprocess.run(command, capture_output=True, text=True)
    report = json.loads(completed.stdout or "{}")
    return report[0] if isinstance(report, list) else report


def executable(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    assert Path(path).exists(), f"{name} is not installed: run `make install`"
    return path
