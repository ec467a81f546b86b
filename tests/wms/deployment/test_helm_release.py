"""wms.deployment.helm_release: a stage's values and manifests, the upgrade --install decision and its Helm options, Helm's errors
turned into ones that say what to do, and the /ping check through the service.

No cluster can run here. Helm's engine does everything it can offline (render, schema, an install in client dry-run
mode on in-memory storage, a real connection attempt to a cluster that is not there); the install-or-upgrade decision
is driven through a double of helm_python.Config whose calls are bound to the real methods' signatures, so an option
Helm does not take fails the test.
"""

from __future__ import annotations

import inspect
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import helm_python as helm
import pytest

from tests.conftest import free_port
from wms.deployment import helm_release
from wms.deployment.helm_release import HelmReleaseError, ImageReference
from wms.deployment.stages import RELEASE_NAME

REPOSITORY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/wms-serving"
DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"{REPOSITORY}@{DIGEST}"


# --- image references and values ----------------------------------------------------------------------------------


def test_an_image_pinned_by_digest_parses_into_repository_and_digest():
    reference = ImageReference.parse(IMAGE)
    assert (reference.repository, reference.digest) == (REPOSITORY, DIGEST)
    assert str(reference) == IMAGE
    assert ImageReference.parse(f"registry.local:5001/wms-serving@{DIGEST}").repository == "registry.local:5001/wms-serving"


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        (f"{REPOSITORY}:v7", "is not pinned by digest"),
        (f"{REPOSITORY}:v7@{DIGEST}", "carries a tag as well as a digest"),
        (f"{REPOSITORY}@sha256:abc", "is malformed"),
        (f"{REPOSITORY}@{DIGEST.upper()}", "is malformed"),
        (f"@{DIGEST}", "is not pinned by digest"),
    ],
)
def test_an_image_not_pinned_by_a_well_formed_digest_is_refused(reference, says):
    with pytest.raises(ValueError, match=says):
        ImageReference.parse(reference)


def test_release_values_lay_the_version_and_image_over_the_stage_file():
    values = helm_release.release_values("staging", 7, IMAGE)
    assert values["model"] == {"version": "7"}
    assert values["image"] == {"repository": REPOSITORY, "digest": DIGEST}
    assert values["stage"] == {"name": "staging", "namespace": "model-staging"}
    assert values["ingress"]["scheme"] == "internal", "the stage file's own values stay"


def test_a_bad_image_names_the_stage_it_was_for():
    with pytest.raises(HelmReleaseError, match=r"the prod release cannot be made: image .* is not pinned by digest"):
        helm_release.release_values("prod", "7", f"{REPOSITORY}:latest")


def test_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="unknown stage 'qa': choose one of staging, prod"):
        helm_release.render("qa", "7", IMAGE)


# --- rendering ----------------------------------------------------------------------------------------------------


def test_render_gives_the_manifests_of_the_stage_namespace():
    manifests = helm_release.render("prod", "7", IMAGE)
    assert all(path.startswith("wms-serving/templates/") for path in manifests)
    assert all("namespace: model-prod" in text for text in manifests.values())
    assert f'image: "{IMAGE}"' in manifests["wms-serving/templates/deployment.yaml"]


def test_render_drops_templates_a_value_switched_off(tmp_path):
    chart = shutil.copytree(helm_release.DEFAULT_CHART, tmp_path / "wms-serving")
    stage_file = chart / "values-staging.yaml"
    stage_file.write_text(stage_file.read_text() + "\nnetworkPolicy:\n  enabled: false\n")
    manifests = helm_release.render("staging", "7", IMAGE, chart_dir=chart)
    assert "wms-serving/templates/networkpolicy.yaml" not in manifests
    assert all(text.strip() for text in manifests.values())
    assert "wms-serving/templates/networkpolicy.yaml" in helm_release.render("staging", "7", IMAGE)


def test_a_render_the_chart_refuses_names_the_stage_and_the_reason():
    with pytest.raises(HelmReleaseError, match=r"the staging release did not render: .*model.version is missing"):
        helm_release.render("staging", "", IMAGE)


def test_a_missing_chart_says_where_it_was_looked_for(tmp_path):
    with pytest.raises(HelmReleaseError, match=f"no Helm chart at {tmp_path}"):
        helm_release.render("staging", "7", IMAGE, chart_dir=tmp_path)


def test_write_manifests_writes_one_file_per_template(tmp_path):
    manifests = helm_release.render("staging", "7", IMAGE)
    written = helm_release.write_manifests(manifests, tmp_path / "out")
    assert sorted(path.name for path in written) == sorted(Path(template).name for template in manifests)
    assert all(path.read_text().startswith(("apiVersion", "#")) for path in written)


def test_write_manifests_refuses_a_folder_that_holds_files(tmp_path):
    (tmp_path / "old.yaml").write_text("kind: Secret\n")
    with pytest.raises(HelmReleaseError, match="is not an empty folder"):
        helm_release.write_manifests({"wms-serving/templates/service.yaml": "kind: Service\n"}, tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["old.yaml"]


# --- upgrade --install ----------------------------------------------------------------------------------------------


class RecordingCluster:
    """Stands in for helm_python.Config (no cluster here): answers history as told and records install/upgrade calls,
    each bound to the real method's signature. With `dry_run_install`, install runs in Helm's engine for real, in
    client dry-run mode on in-memory storage."""

    def __init__(self, history: list[dict] | None = None, fail_with: helm.HelmError | None = None, dry_run_install=False):
        self._history = history
        self._fail_with = fail_with
        self._real = helm.Config(storage_driver="memory") if dry_run_install else None
        self.calls: list[tuple[str, dict]] = []

    def history(self, name, **options):
        self._bind("history", name, **options)
        if self._history is None:
            raise helm.HelmNotFoundError("release: not found", code=helm.ErrorCode.NOT_FOUND)
        return self._history

    def install(self, chart, name, values=None, **options):
        return self._act("install", chart, name, values, **options)

    def upgrade(self, chart, name, values=None, **options):
        return self._act("upgrade", chart, name, values, **options)

    def _act(self, action, chart, name, values, **options):
        self._bind(action, chart, name, values, **options)
        self.calls.append((action, {"name": name, "values": values, **options}))
        if self._fail_with:
            raise self._fail_with
        if self._real:
            return getattr(self._real, action)(chart, name, values, dry_run="client", **options)
        return {"name": name, "revision": 4 if action == "upgrade" else 1, "status": "deployed"}

    @staticmethod
    def _bind(method, *args, **options):
        inspect.signature(getattr(helm.Config, method)).bind(None, *args, **options)


def test_a_new_release_is_installed_with_rollback_on_failure_and_wait():
    cluster = RecordingCluster(history=None)
    revision = helm_release.upgrade("staging", "7", IMAGE, config=cluster, timeout_s=300)
    assert revision == 1
    [(action, options)] = cluster.calls
    assert action == "install"
    assert options["name"] == RELEASE_NAME
    assert options["namespace"] == "model-staging"
    assert (options["wait"], options["timeout"], options["rollback_on_failure"]) == ("watcher", 300, True)
    assert options["values"]["image"] == {"repository": REPOSITORY, "digest": DIGEST}
    assert options["values"]["model"] == {"version": "7"}
    assert "model version 7" in options["description"]


def test_an_existing_release_is_upgraded_and_rolled_back_on_failure():
    cluster = RecordingCluster(history=[{"revision": 3, "status": "deployed"}])
    assert helm_release.upgrade("prod", "8", IMAGE, config=cluster) == 4
    [(action, options)] = cluster.calls
    assert action == "upgrade"
    assert options["namespace"] == "model-prod"
    assert options["rollback_on_failure"] is True and options["cleanup_on_fail"] is True
    assert options["wait"] == "watcher" and options["timeout"] == helm_release.DEFAULT_TIMEOUT_S
    assert options["max_history"] == helm_release.MAX_HISTORY


def test_an_uninstalled_release_is_installed_again():
    cluster = RecordingCluster(history=[{"revision": 2, "status": "uninstalled"}])
    helm_release.upgrade("staging", "7", IMAGE, config=cluster)
    assert [action for action, _ in cluster.calls] == ["install"]


def test_helms_install_action_takes_the_chart_values_and_options_in_dry_run():
    cluster = RecordingCluster(history=None, dry_run_install=True)
    assert helm_release.upgrade("prod", "7", IMAGE, config=cluster) == 1


def test_a_failed_upgrade_says_helm_rolled_back_and_what_to_look_at():
    failure = helm.HelmReleaseError("resource Deployment/model-prod/wms-serving not ready: context deadline exceeded")
    cluster = RecordingCluster(history=[{"revision": 3, "status": "deployed"}], fail_with=failure)
    with pytest.raises(HelmReleaseError) as raised:
        helm_release.upgrade("prod", "8", IMAGE, config=cluster, timeout_s=120)
    message = str(raised.value)
    assert "wms-serving in namespace model-prod (prod)" in message
    assert "Helm rolled it back to the revision that served before" in message
    assert "context deadline exceeded" in message
    assert "within 120 s" in message and "kubectl -n model-prod describe pods" in message


def test_a_failed_first_install_says_helm_removed_it():
    failure = helm.HelmReleaseError("resource Deployment/model-staging/wms-serving not ready: context deadline exceeded")
    cluster = RecordingCluster(history=None, fail_with=failure)
    with pytest.raises(HelmReleaseError, match="failed and Helm removed the failed first install: resource Deployment"):
        helm_release.upgrade("staging", "7", IMAGE, config=cluster)


def test_unreadable_release_records_change_nothing_and_say_what_to_check():
    class Forbidden(RecordingCluster):
        def history(self, name, **options):
            raise helm.HelmStorageError('secrets is forbidden: User "ci" cannot list resource "secrets"')

    cluster = Forbidden()
    with pytest.raises(HelmReleaseError) as raised:
        helm_release.upgrade("prod", "7", IMAGE, config=cluster)
    message = str(raised.value)
    assert "cannot read the release history of wms-serving in namespace model-prod (prod), nothing was changed" in message
    assert "may read and write Secrets there" in message and "forbidden" in message
    assert cluster.calls == []


def test_a_release_stuck_in_another_operation_says_how_to_unstick_it():
    failure = helm.HelmReleaseError("another operation (install/upgrade/rollback) is in progress")
    cluster = RecordingCluster(history=[{"revision": 3, "status": "pending-upgrade"}], fail_with=failure)
    with pytest.raises(HelmReleaseError, match=r"helm -n model-staging rollback wms-serving"):
        helm_release.upgrade("staging", "8", IMAGE, config=cluster)


def test_an_unreachable_cluster_is_reported_with_what_to_do(kubeconfig_of_an_absent_cluster):
    with pytest.raises(HelmReleaseError) as raised:
        helm_release.upgrade("staging", "7", IMAGE, kubeconfig=kubeconfig_of_an_absent_cluster, timeout_s=30)
    message = str(raised.value)
    assert "cannot reach the Kubernetes cluster to release wms-serving in namespace model-staging" in message
    assert "aws eks update-kubeconfig" in message and "connection refused" in message


def test_a_bad_release_fails_before_the_cluster_is_contacted(kubeconfig_of_an_absent_cluster):
    with pytest.raises(HelmReleaseError, match=r"model\.version is missing"):
        helm_release.upgrade("staging", "", IMAGE, kubeconfig=kubeconfig_of_an_absent_cluster)


# --- the /ping check ------------------------------------------------------------------------------------------------


class PingServer:
    """A real HTTP server on loopback that answers /ping from a list of (status, body), the last one repeating."""

    def __init__(self, answers: list[tuple[int, dict]]):
        self.answers = answers
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = server.answers[min(server.requests, len(server.answers) - 1)]
                server.requests += 1
                payload = json.dumps(body).encode()
                self.send_response(status if self.path == "/ping" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def ping_server():
    servers = []

    def start(answers):
        servers.append(PingServer(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_check_ping_returns_once_the_service_answers_healthy(ping_server):
    server = ping_server([(503, {"error": "TorchServe is not answering", "cause": "unavailable"}), (200, {"status": "Healthy"})])
    helm_release.check_ping(server.url + "/", timeout_s=10, interval_s=0.05)
    assert server.requests == 2


def test_check_ping_fails_with_the_last_answer_when_never_healthy(ping_server):
    server = ping_server([(500, {"status": "Unhealthy"})])
    with pytest.raises(HelmReleaseError) as raised:
        helm_release.check_ping(server.url, timeout_s=0.5, interval_s=0.1)
    message = str(raised.value)
    assert f"{server.url}/ping did not answer Healthy" in message and "HTTP 500" in message and "Unhealthy" in message
    assert 2 <= server.requests <= 6, "asked every interval until the timeout, then stopped"


def test_check_ping_reports_a_service_that_is_not_there():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(HelmReleaseError, match="Connection refused"):
        helm_release.check_ping(url, timeout_s=0.2, interval_s=0.1)


def test_the_service_url_is_the_release_service_in_the_stage_namespace():
    assert helm_release.service_url("prod") == "http://wms-serving.model-prod.svc.cluster.local:8080"
    assert helm_release.service_url("staging") == "http://wms-serving.model-staging.svc.cluster.local:8080"
