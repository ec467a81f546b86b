"""Running jobs in this process against the Dagster instance of $DAGSTER_HOME (what `wms run` and `wms rollback` do)."""

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from wms.registry.model_registry import CHAMPION, ChampionEvent, ModelRegistry
from wms_assets.constants import LINEAGE_JOB, PROD_RELEASE, RELEASE_JOB, TRAINED_MODEL, TRAINING_JOB


@dataclass
class JobOutcome:
    success: bool
    run_id: str
    lines: list[str] = field(default_factory=list)
    release_url: str = ""
    sample_photo: str = ""
    result: dg.ExecuteInProcessResult | None = field(default=None, repr=False)

    def summary(self) -> str:
        state = "succeeded" if self.success else "FAILED"
        return "\n".join([f"Dagster run {self.run_id} {state}", *self.lines])


def materialize_job(
    training_overrides: dict | None = None,
    instance: dg.DagsterInstance | None = None,
    defs: dg.Definitions | None = None,
    job: str = LINEAGE_JOB,
) -> JobOutcome:
    """Materialize every asset and check of a job (the whole lineage by default); report materializations and checks."""
    ops = {TRAINED_MODEL.path[-1]: {"config": training_overrides}} if training_overrides else None
    outcome = _execute(job, instance, defs, ops)
    if outcome.success and job == LINEAGE_JOB:
        outcome.sample_photo = str(outcome.result.output_for_node("dataset").pairs("test")[0].image)
    return outcome


def materialize_training(
    training_overrides: dict | None = None, instance: dg.DagsterInstance | None = None, defs: dg.Definitions | None = None
) -> JobOutcome:
    """Data to champion: train, register, gate and promote, without a release."""
    return materialize_job(training_overrides, instance, defs, job=TRAINING_JOB)


def rollback_champion(reason: str, instance: dg.DagsterInstance | None = None, defs: dg.Definitions | None = None) -> JobOutcome:
    """Move `champion` back to the previous champion and release it; if the release fails, the champion is restored."""
    registry = champion_registry(defs)
    event: ChampionEvent = registry.rollback(reason)
    outcome = _execute(RELEASE_JOB, instance, defs)
    move = f"champion: version {event.previous} -> {event.version} ({reason})"
    if not outcome.success:
        registry.promote(str(event.previous), CHAMPION, reason=f"the release of version {event.version} failed: rollback undone")
        move += f"; the release failed, so version {event.previous} is champion again"
    outcome.lines.insert(0, move)
    return outcome


def champion_registry(defs: dg.Definitions | None = None) -> ModelRegistry:
    """The model registry of the definitions' `mlflow` resource, or the current profile's (environment resolved)."""
    if defs is None:
        from wms_assets.profiles import current_profile, resources_for

        return resources_for(current_profile())["mlflow"].process_config_and_initialize().registry()
    return defs.resources["mlflow"].process_config_and_initialize().registry()


def _defs(defs: dg.Definitions | None) -> dg.Definitions:
    if defs is None:
        from wms_assets.definitions import defs
    return defs


def _execute(job: str, instance, defs, ops: dict | None = None) -> JobOutcome:
    run_config: dict = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if ops:
        run_config["ops"] = ops
    with _signal_handlers_kept():
        result = (
            _defs(defs)
            .resolve_job_def(job)
            .execute_in_process(run_config=run_config, instance=instance or dg.DagsterInstance.get(), raise_on_error=False)
        )
    outcome = JobOutcome(success=result.success, run_id=result.run_id, result=result)
    for event in result.all_events:
        if event.is_step_materialization:
            outcome.lines.append(f"  materialized {event.asset_key.to_user_string()}")
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            state = "passed" if evaluation.passed else "FAILED"
            note = evaluation.description or ""
            outcome.lines.append(
                f"  check {evaluation.check_name}: {state}" + (f" ({note})" if note and not evaluation.passed else "")
            )
        elif event.is_step_failure:
            outcome.lines.append(f"  step {event.step_key} failed: {_root_cause(event.event_specific_data.error)}")
    if result.success and any(event.asset_key == PROD_RELEASE for event in result.get_asset_materialization_events()):
        outcome.release_url = result.output_for_node(PROD_RELEASE.path[-1]).url
    return outcome


@contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """SIGINT's and SIGTERM's handlers as they were before the run.

    Dagster's in-process execution copies SIGINT's handler onto SIGTERM and leaves it there. In a process started in
    the background by a script (SIGINT ignored there), SIGTERM was then ignored for good: `kill` no longer stopped
    `wms`, and the processes it spawned could not be terminated either.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)


def _root_cause(error) -> str:
    """The innermost error's message: Dagster wraps the asset's own exception in its step error."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
