"""The serving image: its build context (pinned to one model version) and, when configured, its build and push.

A release must name exactly the image that was built and tested, so the push records the manifest digest and
releases use `repository@sha256:...` (`pinned_reference`), never a tag: a tag can be moved, a digest cannot. Each
build is pushed under a tag of its own (model, version and build time): ECR repositories with immutable tags refuse
a second push to a tag, and the tag is only there for people browsing the repository.

Builders are command-line tools run as subprocesses: buildah (no daemon; `--isolation chroot` works inside CI
containers and pods without user namespaces) or docker. A repository on ECR (`<account>.dkr.ecr.<region>.amazonaws.com`)
is logged into first with a token from boto3's `ecr.get_authorization_token`, handed to the tool on stdin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import wms
from wms.core.project import PROJECT_ROOT, SERVING_DIR
from wms.deployment.stages import CHART_DIR
from wms.serving.front_door import render_config
from wms.serving.site import write_site
from wms.serving.torchserve import MAX_REQUEST_BYTES, SHARED_PROPERTIES

WMS_PACKAGE_DIR = Path(wms.__file__).resolve().parent
HANDLER_PACKAGE = "inference"
"""The part of the wms package that the handler imports, whole (numpy, Pillow, SciPy and prometheus-client; no torch:
an import-linter contract keeps it free of the rest of wms)."""
SERVING_FILES = ("Dockerfile", "start.sh")
FRONT_DOOR_PORT, INFERENCE_PORT, MANAGEMENT_PORT, METRICS_PORT = 8080, 8086, 8081, 8082
"""The image's ports: nginx's (the Service's), TorchServe's inference API behind it, management, metrics (start.sh,
the chart)."""
IMAGE_PROPERTIES = (
    "# TorchServe settings of the serving image, rendered by wms/deployment/container_image.py.",
    f"# Behind nginx (start.sh, nginx.conf): {FRONT_DOOR_PORT} is nginx's, TorchServe's inference API answers on loopback.",
    f"inference_address=http://127.0.0.1:{INFERENCE_PORT}",
    "# The management API answers only inside the pod: models are baked into the image, never loaded at run time.",
    f"management_address=http://127.0.0.1:{MANAGEMENT_PORT}",
    f"metrics_address=http://0.0.0.0:{METRICS_PORT}",
    "# gRPC is not offered: TorchServe always opens it, so it stays on loopback.",
    "grpc_inference_address=127.0.0.1",
    "grpc_management_address=127.0.0.1",
    "# TorchServe's own token authorization is off: its keys are random, written to the working folder and expire",
    "# after an hour, so no client could be given one from a secret. The handler checks a bearer token instead,",
    "# read from the file that WMS_API_KEY_FILE names (a mounted Kubernetes secret).",
    "disable_token_authorization=true",
    "enable_model_api=false",
    *SHARED_PROPERTIES,
    "",
)
"""config.properties of the serving image, but for its workers per model (one in the image, the chart's value on
EKS). The chart carries the same lines in files/config.properties (write_chart_properties; a test keeps them equal)."""
CHART_PROPERTIES = PROJECT_ROOT / CHART_DIR / "files" / "config.properties"


def write_chart_properties() -> Path:
    """Write the image's settings into the chart, which adds its workersPerModel (run after changing IMAGE_PROPERTIES)."""
    CHART_PROPERTIES.write_text("\n".join(IMAGE_PROPERTIES))
    return CHART_PROPERTIES


IMAGE_WEB_ROOT = Path("/home/model-server/www")
"""Where the image keeps the page and the API's description that its front door serves (wms.serving.site)."""
TORCH_STAND_IN_DIR = "torch-stand-in"
"""serving/torch-stand-in: TorchServe's worker imports torch; the serving image gets this small module instead (its
docstring says why; the image test serves a photo with it)."""
REQUIREMENTS_GLOB = "requirements*.txt"
BUILDERS = ("buildah", "docker")
ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
REPOSITORY = re.compile(r"^(?P<host>[A-Za-z0-9.-]+(?::\d+)?)/(?P<path>[a-z0-9]+(?:[._/-][a-z0-9]+)*)$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
OUTPUT_TAIL = 3000


class ImageBuildError(RuntimeError):
    """A step of the image build or push failed; the message says which, the tool's last output, and what to do."""


@dataclass(frozen=True)
class BuildContext:
    path: Path
    digest: str
    model_name: str
    model_version: str


@dataclass(frozen=True)
class PushedImage:
    """An image in its registry: the tag it was pushed under and the digest that pins it."""

    repository: str
    tag: str
    digest: str

    @property
    def reference(self) -> str:
        """What a release deploys: repository@sha256:..., never the tag."""
        return pinned_reference(self.repository, self.digest)


@dataclass(frozen=True)
class RegistryCredentials:
    username: str
    password: str = field(repr=False)
    endpoint: str


def prepare_build_context(archive: Path, model_name: str, model_version: str, destination: Path) -> BuildContext:
    """Lay out everything `docker build` or `buildah bud` needs for this model version; digest its content."""
    if destination.exists():
        shutil.rmtree(destination)
    (destination / "model-store").mkdir(parents=True)
    (destination / "python" / "wms").mkdir(parents=True)
    shutil.copyfile(WMS_PACKAGE_DIR / "__init__.py", destination / "python" / "wms" / "__init__.py")
    shutil.copytree(
        WMS_PACKAGE_DIR / HANDLER_PACKAGE,
        destination / "python" / "wms" / HANDLER_PACKAGE,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for source in [*(SERVING_DIR / name for name in SERVING_FILES), *sorted(SERVING_DIR.glob(REQUIREMENTS_GLOB))]:
        shutil.copy2(source, destination / source.name)
    front_door = render_config(
        Path("/tmp/wms-front-door"),
        IMAGE_WEB_ROOT,
        "0.0.0.0",
        FRONT_DOOR_PORT,
        INFERENCE_PORT,
        MAX_REQUEST_BYTES,
        daemon=True,
        model=(model_name, model_version),
    )
    (destination / "nginx.conf").write_text(front_door)
    (destination / "config.properties").write_text("\n".join(IMAGE_PROPERTIES) + "default_workers_per_model=1\n")
    write_site(destination / IMAGE_WEB_ROOT.name, model_name)
    shutil.copyfile(archive, destination / "model-store" / f"{model_name}.mar")
    shutil.copytree(
        SERVING_DIR / TORCH_STAND_IN_DIR, destination / TORCH_STAND_IN_DIR, ignore=shutil.ignore_patterns("__pycache__")
    )
    return BuildContext(destination, content_digest(destination), model_name, model_version)


def content_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()}"


def build_and_push(
    context: BuildContext,
    repository: str,
    *,
    builder: str = "buildah",
    tls_verify: bool = True,
    build_args: Mapping[str, str] | None = None,
    ca_bundle: Path | None = None,
    ecr_client: Any = None,
) -> PushedImage:
    """Build the serving image from `context`, push it to `repository` and return it with its manifest digest.

    build_args go to the Dockerfile (BASE_IMAGE, ONNXRUNTIME); the model's name, version and the context digest are
    always passed. ca_bundle (buildah only) is mounted over the image's CA bundle during RUN steps, for builds behind
    a TLS-intercepting proxy. ecr_client replaces boto3's ECR client (tests).
    """
    host = check_repository(repository)
    tool = builder_executable(builder)
    check_variant(context.path, (build_args or {}).get("ONNXRUNTIME", "gpu"))
    tag = image_tag(context.model_name, context.model_version)
    reference = f"{repository}:{tag}"
    if is_ecr_host(host):
        login(tool, host, ecr_credentials(host, ecr_client), tls_verify)
    arguments = {
        **(build_args or {}),
        "MODEL_NAME": context.model_name,
        "MODEL_VERSION": context.model_version,
        "BUILD_CONTEXT_DIGEST": context.digest,
    }
    build(tool, context.path, reference, arguments, ca_bundle)
    return PushedImage(repository, tag, push(tool, reference, tls_verify))


def pinned_reference(repository: str, digest: str) -> str:
    """repository@sha256:...: the only form a release may deploy."""
    check_repository(repository)
    if not DIGEST.match(digest or ""):
        raise ImageBuildError(f"{digest!r} is not an image digest (sha256: and 64 hex digits): pin releases to the pushed digest")
    return f"{repository}@{digest}"


def check_repository(repository: str | None) -> str:
    """The registry host of `repository` (host[:port]/path, without tag or digest); a clear error otherwise."""
    match = REPOSITORY.match(repository or "")
    if not match:
        raise ImageBuildError(
            f"image repository {repository!r} is not host/name (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/wms-serving): "
            "give the repository without a tag or digest, in lower case"
        )
    return match["host"]


def check_variant(context: Path, onnxruntime: str) -> None:
    """ONNXRUNTIME picks requirements-onnxruntime-<variant>.txt: refuse a variant without one before building."""
    variants = sorted(
        path.stem.removeprefix("requirements-onnxruntime-") for path in context.glob("requirements-onnxruntime-*.txt")
    )
    if onnxruntime not in variants:
        raise ImageBuildError(
            f"ONNXRUNTIME={onnxruntime!r} is not a variant of the serving image: choose one of {', '.join(variants)}"
        )


def image_tag(model_name: str, model_version: str, now: datetime | None = None) -> str:
    """<model>-v<version>-<UTC build time>: unique per build, readable in the registry's listing."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    tag = f"{model_name}-v{model_version}-{stamp}"
    if not TAG.match(tag):
        raise ImageBuildError(
            f"cannot tag the image {tag!r}: the model name and version may hold only letters, digits, '_', '.' and '-'"
        )
    return tag


def is_ecr_host(host: str) -> bool:
    return bool(ECR_HOST.match(host))


def builder_executable(builder: str | None) -> str:
    """The path of buildah or docker; a clear error for another name or a tool that is not installed."""
    if builder not in BUILDERS:
        raise ImageBuildError(f"image builder {builder!r} is not supported: set it to one of {', '.join(BUILDERS)}")
    path = shutil.which(builder)
    if path is None:
        raise ImageBuildError(
            f"{builder} is not installed on this machine: install it (scripts/install.sh installs buildah) "
            "or choose the other builder"
        )
    return path


def ecr_credentials(host: str, client: Any = None) -> RegistryCredentials:
    """Username and password for an ECR registry, from ecr.get_authorization_token (valid 12 hours).

    The token is base64 of "AWS:<password>"; it opens every registry the caller's IAM principal may use.
    """
    match = ECR_HOST.match(host)
    if match is None:
        raise ImageBuildError(f"{host} is not an ECR registry (<account>.dkr.ecr.<region>.amazonaws.com): nothing to log in to")
    if client is None:
        import boto3

        client = boto3.client("ecr", region_name=match["region"])
    try:
        data = client.get_authorization_token()["authorizationData"][0]
    except Exception as error:  # botocore's NoCredentialsError, ClientError (AccessDenied), EndpointConnectionError
        raise ImageBuildError(
            f"ECR login: could not get an authorization token in {match['region']}: {error}. Give this process AWS "
            "credentials (IRSA, AWS_PROFILE or the CI role) allowed ecr:GetAuthorizationToken"
        ) from error
    return parse_authorization(data)


def parse_authorization(data: Mapping[str, Any]) -> RegistryCredentials:
    """RegistryCredentials from one authorizationData entry of ecr.get_authorization_token."""
    try:
        decoded = base64.b64decode(data["authorizationToken"], validate=True).decode()
        username, password = decoded.split(":", 1)
        endpoint = data["proxyEndpoint"]
    except (KeyError, TypeError, ValueError) as error:
        raise ImageBuildError(
            f"ECR login: the authorization data is not base64 of 'user:password' with a proxyEndpoint "
            f"({type(error).__name__}; the token itself is not shown): check that the client is boto3's ECR client"
        ) from error
    if not username or not password:
        raise ImageBuildError("ECR login: the authorization token holds an empty user name or password")
    return RegistryCredentials(username, password, endpoint)


def login(tool: str, host: str, credentials: RegistryCredentials, tls_verify: bool = True) -> None:
    """`buildah login` / `docker login` with the password on stdin (never on the command line, never in logs)."""
    command = [tool, "login", "--username", credentials.username, "--password-stdin"]
    if Path(tool).name == "buildah":
        command.append(f"--tls-verify={str(tls_verify).lower()}")
    advice = (
        f"check the credentials for {host}; an ECR token lasts 12 hours and the role needs ecr:GetAuthorizationToken"
        if is_ecr_host(host)
        else f"check the credentials for {host}"
    )
    run_step("login", [*command, host], stdin=credentials.password, advice=advice)


def build(tool: str, context: Path, reference: str, build_args: Mapping[str, str], ca_bundle: Path | None) -> None:
    arguments = [part for name, value in build_args.items() for part in ("--build-arg", f"{name}={value}")]
    if Path(tool).name == "buildah":
        command = [tool, "bud", "--isolation", "chroot", "--layers", "--format", "oci", *arguments]
        if ca_bundle is not None:
            command += ["-v", f"{Path(ca_bundle).resolve()}:/etc/ssl/certs/ca-certificates.crt:ro"]
    else:
        if ca_bundle is not None:
            raise ImageBuildError(
                "docker build cannot mount a CA bundle into RUN steps: use the buildah builder, or unset ca_bundle"
            )
        command = [tool, "build", *arguments]
    advice = (
        "read the failing Dockerfile step above; a download that fails on TLS behind a proxy needs ca_bundle, "
        "an unreachable base image needs BASE_IMAGE pointing at a registry this machine reaches"
    )
    run_step("build", [*command, "-f", str(context / "Dockerfile"), "-t", reference, str(context)], advice=advice)


def push(tool: str, reference: str, tls_verify: bool) -> str:
    """Push `reference` and return the manifest digest the registry stored."""
    advice = (
        "check that the repository exists (terraform creates wms-serving in ECR), that the login succeeded "
        "and, for a plain-HTTP registry, that tls_verify is off"
    )
    if Path(tool).name == "buildah":
        with tempfile.TemporaryDirectory() as folder:
            digest_file = Path(folder) / "digest"
            run_step(
                "push",
                [
                    tool,
                    "push",
                    f"--tls-verify={str(tls_verify).lower()}",
                    "--digestfile",
                    str(digest_file),
                    reference,
                    f"docker://{reference}",
                ],
                advice=advice,
            )
            digest = digest_file.read_text().strip()
    else:
        run_step("push", [tool, "push", reference], advice=advice)
        digest = docker_repo_digest(tool, reference)
    if not DIGEST.match(digest):
        raise ImageBuildError(f"push: {reference} was pushed but the digest read back is {digest!r}, not sha256:<64 hex>")
    return digest


def docker_repo_digest(tool: str, reference: str) -> str:
    """The digest docker recorded for `reference`'s repository after the push (RepoDigests: repository@sha256:...)."""
    repository = reference.rsplit(":", 1)[0]
    output = run_step("inspect", [tool, "image", "inspect", "--format", "{{json .RepoDigests}}", reference], advice="")
    for entry in json.loads(output or "[]"):
        name, _, digest = entry.partition("@")
        if name == repository:
            return digest
    raise ImageBuildError(f"push: docker recorded no digest for {repository} (RepoDigests: {output.strip()})")


def run_step(step: str, command: list[str], advice: str, stdin: str | None = None) -> str:
    """Run one tool command; on failure raise ImageBuildError with the step, the tool's last output and advice."""
    completed = subprocess.run(command, input=stdin, capture_output=True, text=True)
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()[-OUTPUT_TAIL:]
        shown = " ".join(command[:2])
        raise ImageBuildError(
            f"{step} failed ({shown}, exit {completed.returncode}): {output}" + (f"\nWhat to do: {advice}" if advice else "")
        )
    return completed.stdout
