"""Both Dockerfiles, read rather than built: hadolint and checkov clean, non-root, pinned, dependencies before source.

The serving image is also built for real (test_image_build.py); the training image is too big to build here (CUDA
torch is several gigabytes), so these checks are what holds it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.cloud import ROOT, checkov
from wms.deployment.container_image import prepare_build_context

SERVING = ROOT / "serving" / "Dockerfile"
TRAINING = ROOT / "training" / "Dockerfile"
DOCKERFILES = [SERVING, TRAINING]
HADOLINT = ROOT / ".venv" / "bin" / "hadolint"
LOCK = ROOT / "requirements.lock"
SERVING_REQUIREMENTS = sorted((ROOT / "serving").glob("requirements*.txt"))
EXPECTED_CHECKOV_SKIPS = {"CKV_DOCKER_2", "CKV_DOCKER_7"}
NOT_IN_STEP_WITH_THE_LOCK = {"onnxruntime": "the newest onnxruntime-gpu is 1.31.1; the CPU variant follows the GPU one"}
"""Packages the serving image pins at another version than requirements.lock, and why."""


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments left out."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#"))
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in text.splitlines()
        if line.strip()
    ]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", re.sub(r"\[.*\]", "", name).lower())


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            # name[extras]==version, the version with its epoch (N!) when it has one
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[a-z,]+\])?)==((?:\d+!)?[A-Za-z0-9_.+\-]+)", requirement)
            assert match, f"{path.name}: {requirement!r} is not pinned exactly (name==version)"
            found[normalized(match[1])] = match[2]
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_hadolint_finds_nothing_down_to_style(dockerfile):
    completed = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "style", str(dockerfile)], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_every_lint_exception_says_why_on_the_line_before(dockerfile):
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            assert lines[number - 1].startswith("# ") and len(lines[number - 1]) > 40, f"line {number + 1}: no reason above"
        if "checkov:skip=" in line:
            check, _, reason = line.split("checkov:skip=", 1)[1].partition(":")
            assert check in EXPECTED_CHECKOV_SKIPS and len(reason) > 30, f"line {number + 1}: skip without a reason"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_checkov_fails_nothing_and_skips_only_the_two_justified_checks(dockerfile):
    report = checkov(dockerfile.parent, "dockerfile")
    assert report["summary"]["failed"] == 0, report["results"]["failed_checks"]
    assert report["summary"]["skipped"] == len(EXPECTED_CHECKOV_SKIPS)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_the_image_runs_as_uid_1000_numerically_so_that_run_as_non_root_can_verify_it(dockerfile):
    users = [arguments for instruction, arguments in instructions(dockerfile) if instruction == "USER"]
    assert users[-1] == "1000:1000"
    assert "useradd --create-home --uid 1000 --user-group" in dockerfile.read_text()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_the_base_is_a_build_arg_whose_default_is_a_versioned_slim_bookworm_tag(dockerfile):
    steps = instructions(dockerfile)
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    assert [instruction for instruction, _ in steps].count("FROM") == 1


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_debian_packages_are_pinned_to_their_upstream_series(dockerfile):
    installs = [arguments for instruction, arguments in instructions(dockerfile) if "apt-get install" in arguments]
    assert installs
    for arguments in installs:
        packages = re.split(r"\s+", arguments.split("apt-get install", 1)[1].split("&&", 1)[0].strip())
        packages = [word for word in packages if not word.startswith("-")]
        assert packages and all(re.fullmatch(r"[a-z0-9.+-]+=[0-9:.*a-z+~-]+", package) for package in packages), packages
        assert "--no-install-recommends" in arguments and "rm -rf /var/lib/apt/lists/*" in arguments


def test_every_serving_requirement_is_pinned_and_both_onnxruntime_variants_pin_the_same_version():
    pinned = {path.name: pins(path) for path in SERVING_REQUIREMENTS}
    assert set(pinned) == {"requirements.txt", "requirements-onnxruntime-gpu.txt", "requirements-onnxruntime-cpu.txt"}
    assert (
        pinned["requirements-onnxruntime-gpu.txt"]["onnxruntime-gpu"] == pinned["requirements-onnxruntime-cpu.txt"]["onnxruntime"]
    )
    assert not set(pinned["requirements.txt"]) & (set(pinned["requirements-onnxruntime-gpu.txt"]) | {"onnxruntime"})


def test_the_serving_image_pins_what_the_tests_ran_with_in_requirements_lock():
    lock = pins(LOCK)
    for path in SERVING_REQUIREMENTS:
        for name, version in pins(path).items():
            if name in lock and name not in NOT_IN_STEP_WITH_THE_LOCK:
                assert version == lock[name], f"{path.name} pins {name}=={version}, requirements.lock {lock[name]}"


def test_the_serving_dockerfile_copies_what_the_build_context_holds_and_nothing_else(tmp_path):
    archive = tmp_path / "m.mar"
    archive.write_bytes(b"")
    context = prepare_build_context(archive, "m", "1", tmp_path / "context").path
    for instruction, arguments in instructions(SERVING):
        if instruction == "COPY":
            for source in [word for word in arguments.split() if not word.startswith("--")][:-1]:
                assert list(context.glob(source.rstrip("/"))), f"COPY {source}: not in the build context"


def test_the_training_dockerfile_copies_files_that_exist_and_its_ignore_file_lets_them_through():
    ignore = (TRAINING.parent / "Dockerfile.dockerignore").read_text().splitlines()
    for instruction, arguments in instructions(TRAINING):
        if instruction == "COPY":
            for source in [word for word in arguments.split() if not word.startswith("--")][:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert f"!{source.split('/')[0] + ('/' if source.endswith('/') else '')}" in ignore, source


@pytest.mark.parametrize(
    ("dockerfile", "dependencies", "sources"),
    [
        (SERVING, "requirements.txt", ("python/", "model-store/", "config.properties")),
        (TRAINING, "requirements.lock", ("wms/", "wms_assets/", "wms_cli/", "serving/")),
    ],
    ids=["serving", "training"],
)
def test_dependencies_are_installed_in_a_layer_before_the_source_is_copied(dockerfile, dependencies, sources):
    steps = instructions(dockerfile)
    copy_dependencies = next(i for i, (name, arguments) in enumerate(steps) if name == "COPY" and dependencies in arguments)
    install = next(i for i, (name, arguments) in enumerate(steps) if name == "RUN" and "pip install" in arguments)
    first_source = min(i for i, (name, arguments) in enumerate(steps) if name == "COPY" and arguments.split()[0] in sources)
    assert copy_dependencies < install < first_source


def test_the_serving_image_installs_into_a_virtual_environment_with_the_chosen_onnxruntime_variant():
    text = " ".join(arguments for _, arguments in instructions(SERVING))
    assert 'python3 -m venv "$VIRTUAL_ENV"' in text and "pip check" in text
    assert "ARG ONNXRUNTIME=gpu" in SERVING.read_text()
    assert '-r "/tmp/requirements/requirements-onnxruntime-${ONNXRUNTIME}.txt"' in text
    assert "/etc/ld.so.conf.d/wms-nvidia.conf" in text and "ldconfig" in text


def test_the_serving_image_keeps_the_handlers_settings_and_ports():
    steps = instructions(SERVING)
    env = " ".join(arguments for name, arguments in steps if name == "ENV")
    for setting in (
        "WMS_API_KEY_FILE=/var/run/secrets/wms/api-token",
        "WMS_HANDLER_METRICS_PORT=8083",
        "PROMETHEUS_MULTIPROC_DIR=/tmp/wms-handler-metrics",
        "MODEL_NAME=${MODEL_NAME}",
    ):
        assert setting in env
    assert ("EXPOSE", "8080 8082 8083") in steps
    assert ("ENTRYPOINT", '["/usr/bin/tini", "--"]') in steps and ("CMD", '["/home/model-server/start.sh"]') in steps
