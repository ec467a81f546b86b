"""Monitoring assets: the input drift between the photos the service saw and the photos the model was trained on."""

from dataclasses import dataclass

import dagster as dg

from wms.monitoring.drift import DriftReport, compare, served_histograms, training_histograms
from wms_assets.assets.data import VersionedDataset
from wms_assets.constants import INPUT_DRIFT, LINEAGE_GROUP, MONITORING_STAGE
from wms_assets.resources import DriftPolicy


@dataclass(frozen=True)
class InputDrift:
    stage: str
    report: DriftReport


@dg.asset(group_name=LINEAGE_GROUP, tags=MONITORING_STAGE, kinds={"prometheus"})
def input_drift(context: dg.AssetExecutionContext, dataset: VersionedDataset, drift_policy: DriftPolicy) -> dg.Output[InputDrift]:
    """PSI of the served photos' brightness, size and window fraction against the training photos' (wms.monitoring.drift)."""
    training = training_histograms(dataset.pairs("train"))
    served = served_histograms(drift_policy.prometheus_url, drift_policy.selector(), drift_policy.window)
    report = compare(training, served, drift_policy.psi_threshold, drift_policy.min_photos)
    context.log.info(report.summary())
    return dg.Output(
        InputDrift(drift_policy.stage, report),
        metadata={
            "summary": report.summary(),
            "served_photos": report.served_photos,
            **{f"psi_{name}": round(value, 4) for name, value in report.psi.items()},
            "stage": drift_policy.stage,
            "window": drift_policy.window,
        },
    )


@dg.asset_check(asset=INPUT_DRIFT, blocking=False)
def input_drift_within_limits(input_drift: InputDrift) -> dg.AssetCheckResult:
    """Warns when a statistic of the served photos moved past the PSI threshold (the drift sensor counts these)."""
    report = input_drift.report
    return dg.AssetCheckResult(
        passed=not report.drifted,
        severity=dg.AssetCheckSeverity.WARN,
        description=report.summary(),
        metadata={"drifted": ", ".join(report.drifted) or "none", "served_photos": report.served_photos},
    )
