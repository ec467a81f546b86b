"""A failed run is reported, with its failed checks, to the webhook of the `alerts` resource."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from wms_assets.resources import Alerts
from wms_assets.sensors.failures import check_warning_alert, run_failure_alert


@pytest.fixture
def webhook():
    """A real HTTP receiver on 127.0.0.1 that keeps what it was sent."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def failed_run(instance: dg.DagsterInstance) -> tuple[dg.DagsterRun, dg.DagsterEvent]:
    @dg.asset
    def photos() -> int:
        return 1

    @dg.asset_check(asset=photos, blocking=True)
    def enough_photos() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, description="3 photos, 30 needed")

    @dg.asset(deps=[photos])
    def model() -> None:
        pass

    result = dg.materialize([photos, enough_photos, model], instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    failure = next(event for event in result.all_events if event.event_type == dg.DagsterEventType.RUN_FAILURE)
    return run, failure


def test_a_failed_run_and_its_failed_check_reach_the_webhook(webhook):
    url, received = webhook
    with dg.instance_for_test() as instance:
        run, failure = failed_run(instance)
        context = dg.build_run_status_sensor_context(
            sensor_name=run_failure_alert.name,
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=run,
            resources={"alerts": Alerts(webhook_url=url)},
        ).for_run_failure()

        run_failure_alert(context)

    (message,) = received
    assert run.run_id[:8] in message["text"] and "failed" in message["text"]
    assert "enough_photos (3 photos, 30 needed)" in message["text"]


def test_without_a_webhook_nothing_is_sent_and_nothing_breaks():
    assert Alerts().notify("a run failed") is False
    assert Alerts(webhook_url="http://127.0.0.1:9/none").notify("a run failed") is False


def test_a_warning_in_a_successful_run_reaches_the_webhook(webhook):
    url, received = webhook

    @dg.asset
    def input_drift() -> int:
        return 1

    @dg.asset_check(asset=input_drift)
    def input_drift_within_limits() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, description="brightness PSI 0.41")

    with dg.instance_for_test() as instance:
        result = dg.materialize([input_drift, input_drift_within_limits], instance=instance)
        success = next(event for event in result.all_events if event.event_type == dg.DagsterEventType.RUN_SUCCESS)
        context = dg.build_run_status_sensor_context(
            sensor_name=check_warning_alert.name,
            dagster_event=success,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            resources={"alerts": Alerts(webhook_url=url)},
        )
        check_warning_alert(context)

    (message,) = received
    assert "succeeded with failed checks: input_drift_within_limits (brightness PSI 0.41)" in message["text"]
