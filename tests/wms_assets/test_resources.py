"""Typed resources (wms_assets.resources): settings out of range are refused before anything runs."""

import dagster as dg
import pytest
from pydantic import ValidationError

from wms_assets.resources import PromotionPolicy


@pytest.mark.parametrize(
    ("setting", "value", "complaint"),
    [
        ("min_test_iou", 1.2, "less than or equal to 1"),
        ("min_test_dice", -0.1, "greater than or equal to 0"),
        ("regression_margin", -0.01, "greater than or equal to 0"),
        ("regression_confidence", 1.0, "less than 1"),
        ("regression_confidence", 0.4, "greater than 0.5"),
        ("max_p95_latency_ms", 0.0, "greater than 0"),
        ("latency_threads", 0, "greater than or equal to 1"),
    ],
)
def test_a_promotion_threshold_out_of_range_is_refused_with_its_name(setting, value, complaint):
    with pytest.raises(ValidationError, match=complaint) as refused:
        PromotionPolicy(**{setting: value})
    assert setting in str(refused.value)


def test_a_threshold_out_of_range_in_a_runs_config_stops_the_run_before_its_first_step():
    """As the Launchpad would set it, on the local profile's in-process executor: the resources are built before any
    step, so nothing trains."""
    steps = []

    @dg.asset
    def first() -> int:
        steps.append("first")
        return 1

    @dg.asset
    def judged(first: int, promotion_policy: PromotionPolicy) -> int:
        steps.append("judged")
        return first

    defs = dg.Definitions(assets=[first, judged], resources={"promotion_policy": PromotionPolicy()})
    config = {"resources": {"promotion_policy": {"config": {"regression_confidence": 1.5}}}}
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(run_config=config, raise_on_error=False)
    assert not result.success and steps == []
    failure = next(event for event in result.all_events if event.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE)
    assert "regression_confidence" in str(failure.event_specific_data.error)
