"""The serving image's build context and the build and push around it, without a registry (tests/images has those).

The tools are stood in by small scripts on PATH that record what they were given: these tests check the commands,
the ECR token's way to the tool (stdin, never the command line), the digest and the errors; tests/images runs the
real buildah and registry.
"""

import base64
import json
import os
import stat
import subprocess
import sys
import sysconfig
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wms.core.project import SERVING_DIR
from wms.deployment.container_image import (
    HANDLER_PACKAGE,
    TORCH_STAND_IN_DIR,
    WMS_PACKAGE_DIR,
    ImageBuildError,
    build_and_push,
    builder_executable,
    ecr_credentials,
    image_tag,
    is_ecr_host,
    parse_authorization,
    pinned_reference,
    prepare_build_context,
)

ECR_REPOSITORY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/wms-serving"
DIGEST = "sha256:" + "ab" * 32


def test_the_context_holds_the_model_the_handler_modules_and_the_server_config(tmp_path):
    archive = tmp_path / "wms-unet-v3.mar"
    archive.write_bytes(b"archive")
    context = prepare_build_context(archive, "wms-unet", "3", tmp_path / "context")
    names = {path.relative_to(context.path).as_posix() for path in context.path.rglob("*") if path.is_file()}
    assert {"Dockerfile", "requirements.txt", "config.properties", "nginx.conf", "start.sh", "model-store/wms-unet.mar"} <= names
    assert {"requirements-onnxruntime-gpu.txt", "requirements-onnxruntime-cpu.txt", "torch-stand-in/torch/__init__.py"} <= names
    assert "listen 0.0.0.0:8080;" in (context.path / "nginx.conf").read_text()
    assert "inference_address=http://127.0.0.1:8086" in (context.path / "config.properties").read_text()
    shipped = {f"python/wms/{HANDLER_PACKAGE}/{module.name}" for module in (WMS_PACKAGE_DIR / HANDLER_PACKAGE).glob("*.py")}
    assert "python/wms/inference/predict.py" in shipped and shipped | {"python/wms/__init__.py"} <= names
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


STAND_IN_PROBE = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]  # the stand-in first: the test venv has the real torch
from ts.protocol.otf_message_handler import create_predict_response
import torch
message = create_predict_response([{"window_fraction": 0.5}, b"raw"], {0: "a", 1: "b"}, "ok", 200)
assert b'"window_fraction": 0.5' in message and b"raw" in message, message
assert not hasattr(torch, "cuda")
print(torch.__file__)
"""


def test_torchserves_worker_protocol_runs_with_the_torch_stand_in(tmp_path):
    archive = tmp_path / "m.mar"
    archive.write_bytes(b"")
    context = prepare_build_context(archive, "m", "1", tmp_path / "context")
    stand_in = context.path / TORCH_STAND_IN_DIR
    result = subprocess.run(
        [sys.executable, "-S", "-c", STAND_IN_PROBE, str(stand_in), sysconfig.get_paths()["purelib"]],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(stand_in / "torch" / "__init__.py")


FAKE_TOOL = """#!{python}
import json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if "--password-stdin" in args else ""
with open(os.environ["FAKE_TOOL_LOG"], "a") as log:
    log.write(json.dumps({{"tool": os.path.basename(sys.argv[0]), "args": args, "stdin": stdin}}) + "\\n")
if args[0] == os.environ.get("FAKE_TOOL_FAILS"):
    print("STEP 3/20: RUN apt-get update", file=sys.stdout)
    print("E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease", file=sys.stderr)
    sys.exit(1)
if args[0] == "push" and "--digestfile" in args:
    with open(args[args.index("--digestfile") + 1], "w") as digest_file:
        digest_file.write(os.environ["FAKE_DIGEST"] + "\\n")
if args[:2] == ["image", "inspect"]:
    print(json.dumps(["other.example/wms@sha256:" + "00" * 32, os.environ["FAKE_REPO_DIGEST"]]))
"""


class FakeEcr:
    """boto3's ECR client as far as ecr_credentials uses it."""

    def __init__(self, password: str = "ecr-password-from-token", error: Exception | None = None):
        self.password, self.error, self.calls = password, error, 0

    def get_authorization_token(self):
        self.calls += 1
        if self.error:
            raise self.error
        token = base64.b64encode(f"AWS:{self.password}".encode()).decode()
        return {
            "authorizationData": [
                {
                    "authorizationToken": token,
                    "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                    "expiresAt": datetime(2030, 1, 1, tzinfo=UTC),
                }
            ]
        }


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """buildah and docker stand-ins on PATH; returns a function that reads what they were called with."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("buildah", "docker"):
        script = folder / name
        script.write_text(FAKE_TOOL.format(python=sys.executable))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TOOL_LOG", str(log))
    monkeypatch.setenv("FAKE_DIGEST", DIGEST)
    monkeypatch.setenv("FAKE_REPO_DIGEST", f"{ECR_REPOSITORY}@{DIGEST}")
    return lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def context(tmp_path):
    archive = tmp_path / "wms-unet-v3.mar"
    archive.write_bytes(b"archive")
    return prepare_build_context(archive, "wms-unet", "3", tmp_path / "context")


@pytest.mark.parametrize(
    ("host", "ecr"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", True),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", True),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", True),
        ("127.0.0.1:5001", False),
        ("ghcr.io", False),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com.example.org", False),
        ("12345.dkr.ecr.eu-west-1.amazonaws.com", False),
    ],
)
def test_only_ecr_hosts_are_logged_into_with_an_ecr_token(host, ecr):
    assert is_ecr_host(host) is ecr


def test_the_ecr_token_is_base64_of_aws_and_the_password_which_never_shows_in_a_repr():
    client = FakeEcr()
    credentials = ecr_credentials("123456789012.dkr.ecr.eu-west-1.amazonaws.com", client)
    assert (credentials.username, credentials.password) == ("AWS", "ecr-password-from-token")
    assert credentials.endpoint == "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert "ecr-password-from-token" not in repr(credentials)
    assert client.calls == 1


@pytest.mark.parametrize(
    "data",
    [
        {"authorizationToken": "not base64!", "proxyEndpoint": "https://x"},
        {"authorizationToken": base64.b64encode(b"no-colon").decode(), "proxyEndpoint": "https://x"},
        {"authorizationToken": base64.b64encode(b"AWS:").decode(), "proxyEndpoint": "https://x"},
        {"authorizationToken": base64.b64encode(b"AWS:pw").decode()},
    ],
)
def test_authorization_data_that_is_not_a_user_and_password_is_refused(data):
    with pytest.raises(ImageBuildError, match="ECR login"):
        parse_authorization(data)


def test_without_aws_credentials_the_error_says_which_permission_is_needed():
    client = FakeEcr(error=RuntimeError("Unable to locate credentials"))
    with pytest.raises(ImageBuildError) as failed:
        ecr_credentials("123456789012.dkr.ecr.eu-west-1.amazonaws.com", client)
    assert "Unable to locate credentials" in str(failed.value)
    assert "ecr:GetAuthorizationToken" in str(failed.value) and "eu-west-1" in str(failed.value)


def test_boto3s_ecr_client_is_made_in_the_region_of_the_repository(monkeypatch):
    import boto3

    made = []
    monkeypatch.setattr(boto3, "client", lambda service, region_name: made.append((service, region_name)) or FakeEcr())
    ecr_credentials("123456789012.dkr.ecr.ap-southeast-2.amazonaws.com")
    assert made == [("ecr", "ap-southeast-2")]


def test_buildah_builds_with_the_model_and_build_args_then_pushes_and_returns_the_digest(tools, context, tmp_path):
    bundle = tmp_path / "ca.crt"
    bundle.write_text("certificates")
    image = build_and_push(
        context,
        "127.0.0.1:5001/wms-serving",
        tls_verify=False,
        build_args={"BASE_IMAGE": "localhost/base:bookworm", "ONNXRUNTIME": "cpu"},
        ca_bundle=bundle,
    )
    calls = tools()
    assert [call["args"][0] for call in calls] == ["bud", "push"]  # not an ECR host: no login
    build, push = (call["args"] for call in calls)
    assert build[:3] == ["bud", "--isolation", "chroot"]
    for argument in ("BASE_IMAGE=localhost/base:bookworm", "ONNXRUNTIME=cpu", "MODEL_NAME=wms-unet", "MODEL_VERSION=3"):
        assert argument in build
    assert f"BUILD_CONTEXT_DIGEST={context.digest}" in build
    assert f"{bundle}:/etc/ssl/certs/ca-certificates.crt:ro" in build
    assert build[-1] == str(context.path) and build[build.index("-f") + 1] == str(context.path / "Dockerfile")
    reference = build[build.index("-t") + 1]
    assert push[-2:] == [reference, f"docker://{reference}"] and "--tls-verify=false" in push
    assert image.digest == DIGEST
    assert reference == f"127.0.0.1:5001/wms-serving:{image.tag}" and image.tag.startswith("wms-unet-v3-")
    assert image.reference == f"127.0.0.1:5001/wms-serving@{DIGEST}"


def test_an_ecr_repository_is_logged_into_first_with_the_token_on_stdin_never_on_the_command_line(tools, context):
    image = build_and_push(context, ECR_REPOSITORY, builder="docker", ecr_client=FakeEcr())
    calls = tools()
    assert [call["args"][0] for call in calls] == ["login", "build", "push", "image"]
    assert calls[0]["args"] == ["login", "--username", "AWS", "--password-stdin", ECR_REPOSITORY.split("/")[0]]
    assert calls[0]["stdin"] == "ecr-password-from-token"
    assert not any("ecr-password-from-token" in " ".join(call["args"]) for call in calls)
    assert image.digest == DIGEST  # from RepoDigests, the entry of this repository
    assert image.reference == f"{ECR_REPOSITORY}@{DIGEST}"


def test_a_failed_build_names_the_step_shows_the_tools_output_and_what_to_do_and_pushes_nothing(tools, context, monkeypatch):
    monkeypatch.setenv("FAKE_TOOL_FAILS", "bud")
    with pytest.raises(ImageBuildError) as failed:
        build_and_push(context, "127.0.0.1:5001/wms-serving")
    message = str(failed.value)
    assert message.startswith("build failed") and "exit 1" in message
    assert "STEP 3/20: RUN apt-get update" in message and "Failed to fetch" in message
    assert "What to do:" in message
    assert [call["args"][0] for call in tools()] == ["bud"]


def test_a_push_that_records_no_digest_is_an_error(tools, context, monkeypatch):
    monkeypatch.setenv("FAKE_DIGEST", "latest")
    with pytest.raises(ImageBuildError, match="digest read back is 'latest'"):
        build_and_push(context, "127.0.0.1:5001/wms-serving")


def test_docker_cannot_mount_a_ca_bundle_into_run_steps(tools, context, tmp_path):
    with pytest.raises(ImageBuildError, match="use the buildah builder"):
        build_and_push(context, "127.0.0.1:5001/wms-serving", builder="docker", ca_bundle=tmp_path)


def test_an_unknown_or_missing_builder_is_a_clear_error(monkeypatch, tmp_path):
    with pytest.raises(ImageBuildError, match="'podman' is not supported: set it to one of buildah, docker"):
        builder_executable("podman")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImageBuildError, match="buildah is not installed"):
        builder_executable("buildah")


@pytest.mark.parametrize(
    "repository",
    [None, "", "wms-serving", f"{ECR_REPOSITORY}:v3", f"{ECR_REPOSITORY}@{DIGEST}", "registry.example/WMS-Serving"],
)
def test_a_repository_must_be_host_and_name_without_tag_or_digest(tools, context, repository):
    with pytest.raises(ImageBuildError, match="is not host/name"):
        build_and_push(context, repository)
    assert tools() == []


def test_releases_pin_the_digest_and_refuse_anything_else():
    assert pinned_reference(ECR_REPOSITORY, DIGEST) == f"{ECR_REPOSITORY}@{DIGEST}"
    for not_a_digest in ("latest", "sha256:abc", "", None, "sha512:" + "ab" * 32):
        with pytest.raises(ImageBuildError, match="is not an image digest"):
            pinned_reference(ECR_REPOSITORY, not_a_digest)


def test_each_build_gets_its_own_readable_tag():
    assert image_tag("wms-unet", "3", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "wms-unet-v3-20260102T030405Z"
    with pytest.raises(ImageBuildError, match="may hold only letters"):
        image_tag("wms unet", "3")


def test_the_serving_dockerfile_and_requirements_are_what_the_context_carries(context):
    for source in [SERVING_DIR / "Dockerfile", *SERVING_DIR.glob("requirements*.txt")]:
        assert (context.path / source.name).read_bytes() == source.read_bytes()
    assert Path(context.path / "start.sh").stat().st_mode & stat.S_IXUSR


def test_an_onnxruntime_variant_without_requirements_is_refused_before_building(tools, context):
    with pytest.raises(ImageBuildError, match="ONNXRUNTIME='cuda' is not a variant of the serving image: choose one of cpu, gpu"):
        build_and_push(context, "127.0.0.1:5001/wms-serving", build_args={"ONNXRUNTIME": "cuda"})
    assert tools() == []


def test_the_serving_image_asset_records_the_digest_and_the_pinned_reference(tools, tmp_path):
    from wms_assets.assets.serving import ServingArtifacts, serving_image
    from wms_assets.resources import ImageBuilder, ServingWorkspace

    archive = tmp_path / "wms-unet-v3.mar"
    archive.write_bytes(b"archive")
    artifacts = ServingArtifacts("wms-unet", "3", str(tmp_path / "model.onnx"), str(archive))
    builder = ImageBuilder(
        builder="buildah", repository="127.0.0.1:5001/wms-serving", base_image="localhost/base", onnxruntime="cpu"
    )
    output = serving_image(
        serving_artifacts=artifacts, image_builder=builder, serving_workspace=ServingWorkspace(root=str(tmp_path / "ws"))
    )
    image = output.value
    assert image.image_digest == DIGEST and image.reference == f"127.0.0.1:5001/wms-serving@{DIGEST}"
    assert output.metadata["image_reference"].value == image.reference
    build = tools()[0]["args"]
    assert "BASE_IMAGE=localhost/base" in build and "ONNXRUNTIME=cpu" in build


def test_without_a_builder_the_serving_image_asset_only_prepares_the_context(tools, tmp_path):
    from wms_assets.assets.serving import ServingArtifacts, serving_image
    from wms_assets.resources import ImageBuilder, ServingWorkspace

    archive = tmp_path / "wms-unet-v3.mar"
    archive.write_bytes(b"archive")
    artifacts = ServingArtifacts("wms-unet", "3", str(tmp_path / "model.onnx"), str(archive))
    output = serving_image(
        serving_artifacts=artifacts, image_builder=ImageBuilder(), serving_workspace=ServingWorkspace(root=str(tmp_path / "ws"))
    )
    assert output.value.reference is None and output.value.image_digest is None
    assert output.metadata["built"].value is False
    assert tools() == []


def test_a_token_that_does_not_decode_is_refused_without_showing_it():
    secret = "s3cr\xe9t-password"
    token = base64.b64encode(b"AWS:" + secret.encode("latin-1")).decode()  # not UTF-8
    with pytest.raises(ImageBuildError, match="the token itself is not shown") as refused:
        parse_authorization({"authorizationToken": token, "proxyEndpoint": "https://x"})
    assert "s3cr" not in str(refused.value)
