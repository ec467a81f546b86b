"""The registry login for real: a docker-registry that asks for a password, as ECR does, and buildah.

ECR cannot be reached from here, so the token comes from `parse_authorization` (what `ecr_credentials` returns for
ecr.get_authorization_token's answer) and goes through `login` (buildah login --password-stdin) to a registry with
htpasswd authentication; the push after it is accepted, and refused without it.
"""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from tests.conftest import free_port
from tests.images.conftest import run
from tests.images.registry import start_registry
from wms.deployment.container_image import ImageBuildError, RegistryCredentials, login, parse_authorization, push

pytestmark = pytest.mark.integration

USER, PASSWORD = "AWS", "eyJwYXlsb2FkIjoiZmFrZSJ9-a-long-ecr-password"
NAME = "wms-serving"


@pytest.fixture(scope="module")
def guarded_registry(tmp_path_factory):
    started = start_registry(tmp_path_factory.mktemp("guarded-registry"), free_port(), credentials=(USER, PASSWORD))
    yield started
    started.stop()
    shutil.rmtree(started.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def small_image(buildah_storage, tmp_path_factory) -> str:
    """A one-file image: what is pushed does not matter here, only whether the registry lets it in."""
    payload = tmp_path_factory.mktemp("small-image") / "hello.txt"
    payload.write_text("hello\n")
    container = run("buildah", "from", "scratch").stdout.strip()
    run("buildah", "copy", "--quiet", container, str(payload), "/hello.txt")
    run("buildah", "commit", "--quiet", "--rm", container, "localhost/wms-login-probe:1")
    return "localhost/wms-login-probe:1"


@pytest.fixture
def fresh_auth_file(tmp_path, monkeypatch):
    """No credentials from an earlier test."""
    auth_file = tmp_path / "auth.json"
    auth_file.write_text('{"auths": {}}')
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    return auth_file


def tagged(image: str, registry, tag: str) -> str:
    reference = f"{registry.host}/{NAME}:{tag}"
    run("buildah", "tag", image, reference)
    return reference


def test_a_push_without_login_is_refused_and_the_error_names_the_step_and_what_to_do(
    guarded_registry, small_image, fresh_auth_file
):
    reference = tagged(small_image, guarded_registry, "anonymous")
    with pytest.raises(ImageBuildError) as refused:
        push(shutil.which("buildah"), reference, tls_verify=False)
    message = str(refused.value)
    assert message.startswith("push failed")
    assert "authentication required" in message.lower() or "unauthorized" in message.lower()
    assert "What to do:" in message and "login" in message


def test_the_ecr_style_token_logs_buildah_in_and_the_push_is_accepted(guarded_registry, small_image, fresh_auth_file):
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    credentials = parse_authorization({"authorizationToken": token, "proxyEndpoint": f"http://{guarded_registry.host}"})
    login(shutil.which("buildah"), guarded_registry.host, credentials, tls_verify=False)
    assert guarded_registry.host in json.loads(fresh_auth_file.read_text())["auths"]
    reference = tagged(small_image, guarded_registry, "logged-in")
    digest = push(shutil.which("buildah"), reference, tls_verify=False)
    assert guarded_registry.manifest(NAME, "logged-in")[0] == digest


def test_a_wrong_password_fails_the_login_step_without_showing_the_password(guarded_registry, fresh_auth_file):
    wrong = "not-the-password-4711"
    with pytest.raises(ImageBuildError, match=r"^login failed") as refused:
        login(shutil.which("buildah"), guarded_registry.host, RegistryCredentials(USER, wrong, "x"), tls_verify=False)
    assert wrong not in str(refused.value)
    assert json.loads(fresh_auth_file.read_text())["auths"] == {}
