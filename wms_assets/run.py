"""Running the lineage job in this process against the Dagster instance of $DAGSTER_HOME (what `wms run` does)."""

from dataclasses import dataclass, field

import dagster as dg

from wms_assets.constants import LINEAGE_JOB, TRAINED_MODEL


@dataclass
class LineageOutcome:
    success: bool
    run_id: str
    lines: list[str] = field(default_factory=list)
    release_url: str = ""
    sample_photo: str = ""

    def summary(self) -> str:
        state = "succeeded" if self.success else "FAILED"
        return "\n".join([f"Dagster run {self.run_id} {state}", *self.lines])


def materialize_lineage(
    training_overrides: dict | None = None, instance: dg.DagsterInstance | None = None, defs: dg.Definitions | None = None
) -> LineageOutcome:
    """Materialize every asset and check of the lineage; report materializations and check results."""
    if defs is None:
        from wms_assets.definitions import defs

    run_config: dict = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    if training_overrides:
        run_config["ops"] = {TRAINED_MODEL.path[-1]: {"config": training_overrides}}
    result = defs.resolve_job_def(LINEAGE_JOB).execute_in_process(
        run_config=run_config, instance=instance or dg.DagsterInstance.get(), raise_on_error=False
    )
    outcome = LineageOutcome(success=result.success, run_id=result.run_id)
    for event in result.all_events:
        if event.is_step_materialization:
            outcome.lines.append(f"  materialized {event.asset_key.to_user_string()}")
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            outcome.lines.append(f"  check {evaluation.check_name}: {'passed' if evaluation.passed else 'FAILED'}")
        elif event.is_step_failure:
            outcome.lines.append(f"  step {event.step_key} failed: {_root_cause(event.event_specific_data.error)}")
    if result.success:
        release = result.output_for_node("release")
        outcome.release_url = release.url
        outcome.sample_photo = str(result.output_for_node("dataset").pairs("test")[0].image)
    return outcome


def _root_cause(error) -> str:
    """The innermost error's message: Dagster wraps the asset's own exception in its step error."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()
