"""Report failed Dagster runs, and failed checks (blocking or warnings), through the configured alert hook."""

import dagster as dg

from wms_assets.resources import Alerts


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """'check (why)' for every check that failed in the run."""
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [entry.dagster_event.event_specific_data for entry in entries]
    return [f"{check.check_name} ({check.description or 'no reason given'})" for check in evaluations if not check.passed]


def failure_text(run: dg.DagsterRun, error: str, failed_checks: list[str]) -> str:
    checks = f"; failed checks: {', '.join(failed_checks)}" if failed_checks else ""
    return f"WMS: run {run.run_id[:8]} of {run.job_name} failed: {error}{checks}"


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports every failed run (and the checks that failed in it) to the `alerts` resource's webhook.",
)
def run_failure_alert(context: dg.RunFailureSensorContext, alerts: Alerts) -> None:
    failed = failed_checks(context.instance, context.dagster_run.run_id)
    text = failure_text(context.dagster_run, context.failure_event.message or "no message", failed)
    sent = alerts.notify(text)
    context.log.info("%s (%s)", text, "sent" if sent else "no webhook answered: logged only")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports checks that failed in a run that still succeeded (warnings: drift, split proportions).",
)
def check_warning_alert(context: dg.RunStatusSensorContext, alerts: Alerts) -> None:
    failed = failed_checks(context.instance, context.dagster_run.run_id)
    if not failed:
        return
    run = context.dagster_run
    text = f"WMS: run {run.run_id[:8]} of {run.job_name} succeeded with failed checks: {', '.join(failed)}"
    sent = alerts.notify(text)
    context.log.info("%s (%s)", text, "sent" if sent else "no webhook answered: logged only")
