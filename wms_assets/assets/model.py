"""Model assets: training with MLflow tracking, registration as `challenger`, promotion to `champion`."""

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field, create_model

from wms.core.gitinfo import current_git_sha
from wms.core.progress import EpochProgress
from wms.inference.evaluation import score_as_served
from wms.inference.model_card import ORIGIN_TAGS
from wms.inference.overlays import WORST_CASES_SHEET, prediction_sheet, worst_cases_sheet
from wms.inference.predict import Segmenter, onnx_segmenter
from wms.registry.gates import NO_REGRESSION, PASSED, gate_outcomes
from wms.registry.model_registry import CHALLENGER, CHAMPION, MODEL_URI_TAG, ONNX_URI_TAG, gates_table
from wms.training.export import export_onnx
from wms.training.model import TorchBackend
from wms.training.settings import DEFAULT_PRESET, PRESET_FILES, TrainSettings, setting_help, setting_types, settings_for
from wms.training.train import TrainingResult, code_fingerprint, train
from wms.training.warm_start import AUTO, Parent, scratch_reason
from wms_assets.assets.data import VersionedDataset
from wms_assets.constants import LINEAGE_GROUP, MODEL_STAGE, PROGRESS_TAG, RUN_REASON_TAG
from wms_assets.kubernetes import training_pod_tags
from wms_assets.resources import MlflowRegistry, PromotionPolicy, TrainingWorkspace

TRAINING_KEY_TAG = "wms_training_key"
REQUEST_KEY_TAG = "wms_request_key"
POLICY_TAG = "wms/promotion_policy"
"""The gates the run's model will be judged by (PromotionPolicy.summary)."""
NOTES_TAG = "wms/training_notes"
"""How the training ran where the machine decided it (the precision and why, a compile that fell back)."""
RUN_ID_FILE = "mlflow_run_id"


class TrainingChoices(dg.Config):
    """What a run chooses besides the settings: the preset they start from, how training starts, reuse."""

    preset: str = Field(
        default=DEFAULT_PRESET,
        description="Named settings (wms/training/presets): "
        + " ".join(f"{item.name}: {item.description}" for item in PRESET_FILES.values()),
    )
    start: str = Field(
        default=AUTO,
        description="auto: fine-tune the champion when the data is new and the champion has this encoder and input side "
        "(else train from scratch); scratch: always from scratch (the code sensor's runs do).",
    )
    reuse_finished_run: bool = Field(
        default=True,
        description="Reuse a finished MLflow run of the same request (these settings and start), or of the same settings "
        "once the start is resolved, on the same data version and code, instead of retraining.",
    )

    def settings(self) -> TrainSettings:
        return settings_for(self.model_dump(exclude={"start", "reuse_finished_run"}))


TrainingConfig = create_model(
    "TrainingConfig",
    __base__=TrainingChoices,
    __doc__="How the U-Net is trained: a preset, and any setting of it overridden. Unset fields take the preset's value.",
    **{name: (kind | None, Field(default=None, description=setting_help()[name])) for name, kind in setting_types().items()},
)
"""The trained_model asset's config: every training setting (wms.training.settings), optional, over the preset's."""


@dataclass(frozen=True)
class TrainedModel:
    run_id: str
    model_uri: str
    onnx_uri: str
    encoder: str
    image_size: int
    data_version: str
    git_sha: str
    scores: dict[str, float]
    """Test-split scores: test_mean_iou, test_mean_dice, test_dataset_iou, test_precision, test_recall, ..."""
    origin: dict[str, str] = field(default_factory=dict)
    """What the model card tells: trained_on, photos, preset, schedule, start, parent_version, reason (ORIGIN_TAGS)."""

    @property
    def test_iou(self) -> float:
        return self.scores["test_mean_iou"]

    @property
    def test_dice(self) -> float:
        return self.scores["test_mean_dice"]


@dataclass(frozen=True)
class RegisteredVersion:
    version: str
    model: TrainedModel


def training_key(settings: TrainSettings, data_version: str, start: str = "") -> str:
    """Same settings, same data, same library code: the same model, so its run can be reused."""
    payload = {"settings": settings.as_params(), "data": data_version, "code": code_fingerprint()}
    payload |= {"start": start} if start else {}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


@dg.asset(group_name=LINEAGE_GROUP, tags=MODEL_STAGE, kinds={"pytorch", "mlflow", "kubernetes"}, op_tags=training_pod_tags)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    dataset: VersionedDataset,
    mlflow: MlflowRegistry,
    training_workspace: TrainingWorkspace,
    promotion_policy: PromotionPolicy,
) -> dg.Output[TrainedModel]:
    """A segmentation-models-pytorch U-Net trained on the train split and scored on the fixed test split.

    The run records the gates its model will be judged by; taking them here also refuses thresholds out of range
    before any epoch, whichever executor runs the step.

    Every epoch is checkpointed: a training that was killed resumes from its last epoch, in the same MLflow run, and
    one that failed after its last epoch trains nothing again: the rerun logs what its checkpoints hold. The same
    request on the same data reuses its finished run even when the champion has moved since (a rerun after a kill
    between promotion and release would otherwise train again, from the new champion).
    """
    registry, git_sha = mlflow.registry(), current_git_sha()
    request = training_key(config.settings(), dataset.data_version, config.start)
    previous = registry.find_finished_run(REQUEST_KEY_TAG, request) if config.reuse_finished_run else None
    if previous is None:
        settings, origin = _start(context, config, dataset, registry, training_workspace)
        key = training_key(settings, dataset.data_version)
        previous = registry.find_finished_run(TRAINING_KEY_TAG, key) if config.reuse_finished_run else None
    if previous is not None:
        context.log.info("reusing MLflow run %s: same settings, data and code", previous.info.run_id)
        return _output(_from_run(previous, dataset.data_version, git_sha), mlflow, registry, {"reused_previous_run": True})
    tags = {"dagster_run_id": context.run_id, "git_sha": git_sha, "data_version": dataset.data_version}
    tags |= {TRAINING_KEY_TAG: key, REQUEST_KEY_TAG: request, POLICY_TAG: promotion_policy.summary(), **origin}
    model, facts = _train_and_log(context, registry, dataset, settings, tags, training_workspace.checkpoints(key))
    if "parent_version" in origin:  # its weights are in the registry: fetched again if another retrain needs them
        training_workspace.parent_weights(origin["parent_version"]).unlink(missing_ok=True)
    return _output(model, mlflow, registry, {"reused_previous_run": False, **facts})


def _start(context, config: TrainingConfig, dataset: VersionedDataset, registry, workspace: TrainingWorkspace):
    """The settings to train with (the fine-tune schedule from the champion's weights, or the recipe from scratch),
    and the origin facts of the model card."""
    settings, parent = config.settings(), champion_parent(registry)
    why_scratch = scratch_reason(config.start, settings, parent, dataset.data_version)
    origin = {
        "trained_on": dataset.source,
        "photos": " ".join(f"{split}={len(names)}" for split, names in dataset.splits.items()),
        "preset": config.preset,
        "reason": context.run.tags.get(RUN_REASON_TAG, "started by hand (wms run, the UI)"),
    }
    if why_scratch:
        context.log.info("training from scratch: %s", why_scratch)
        return settings, origin | {
            "start": f"from scratch: {why_scratch}",
            "schedule": settings.cycles or f"{settings.epochs} epochs",
        }
    weights = workspace.parent_weights(parent.version)
    if not weights.exists():
        registry.save_state_dict(parent.version, weights)
    context.log.info("fine-tuning champion version %s on new data with %s", parent.version, settings.fine_tune)
    start = f"fine-tuned from version {parent.version} (data version {parent.data_version})"
    return settings.fine_tuning(weights), origin | {
        "start": start,
        "parent_version": parent.version,
        "schedule": settings.fine_tune,
    }


def champion_parent(registry) -> Parent | None:
    """The champion as a start for fine-tuning, or None when there is none."""
    champion = registry.version_by_alias(CHAMPION)
    if champion is None:
        return None
    trained = registry.settings_of(f"models:/{registry.model_name}/{champion.version}")
    return Parent(
        str(champion.version),
        champion.tags.get("encoder", ""),
        trained.image_size,
        champion.tags.get("data_version", ""),
        trained.decoder_channels,
    )


def run_name(origin: dict, data_version: str) -> str:
    """What the MLflow run is, for the runs list: 'demo, fine-tune of v3, data 1a2b3c4d, 2026-12-04 17:06'."""
    start = f"fine-tune of v{origin['parent_version']}" if "parent_version" in origin else "from scratch"
    return f"{origin.get('preset', 'custom')}, {start}, data {data_version[:8]}, {datetime.now(UTC):%Y-%m-%d %H:%M}"


def _train_and_log(context, registry, dataset: VersionedDataset, settings: TrainSettings, tags: dict, checkpoints: Path):
    """Train inside an MLflow run, resuming the run of a killed training; return the model and facts for the UI."""
    run_id_file = checkpoints / RUN_ID_FILE
    resume_run_id = run_id_file.read_text().strip() if run_id_file.exists() else None
    name = run_name(tags, dataset.data_version)
    with registry.training_run(settings.as_params(), tags, resume_run_id=resume_run_id, name=name) as run:
        checkpoints.mkdir(parents=True, exist_ok=True)
        run_id_file.write_text(run.run_id)

        progress = EpochProgress(settings.epochs, len(settings.schedule()))

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            run.log_epoch(epoch, metrics)
            place = progress.after(epoch, int(metrics.get("cycle", 1)))
            context.log.info("%s %s", place, {k: round(v, 4) for k, v in metrics.items()})
            context.instance.add_run_tags(context.run_id, {PROGRESS_TAG: place})  # the Runs page shows it live

        splits = {split: dataset.pairs(split) for split in dataset.splits}
        result = train(splits, settings, on_epoch=on_epoch, checkpoints=checkpoints, on_note=context.log.info)
        if result.resumed_at_epoch == len(result.history):
            context.log.info("all %d epochs were trained before (%s): logging their result", len(result.history), checkpoints)
        try:
            logged = _log_result(run, result, dataset.data_version, splits["test"], checkpoints)
        except BaseException:
            context.log.error(
                f"the {len(result.history)} trained epochs are kept in {checkpoints}: once the cause is mended, run the "
                "same training again (or re-execute this run) and it logs them without training again"
            )
            raise
    shutil.rmtree(checkpoints, ignore_errors=True)  # all of it is in the finished MLflow run now
    identity = {"run_id": run.run_id, "model_uri": logged.model_uri, "onnx_uri": logged.onnx_uri}
    trained = {"encoder": settings.encoder, "image_size": settings.image_size, "data_version": dataset.data_version}
    origin = {key: tags[key] for key in ORIGIN_TAGS if key in tags}
    return TrainedModel(**identity, **trained, git_sha=tags["git_sha"], scores=logged.scores, origin=origin), logged.facts


@dataclass
class _Logged:
    model_uri: str
    onnx_uri: str
    scores: dict[str, float]
    facts: dict


def _log_result(run, result: TrainingResult, data_version: str, test_pairs, checkpoints: Path) -> _Logged:
    """Log the exported model's test scores (each photo read as the service reads it), the last checkpoint, the
    PyTorch and ONNX models, and two overlay sheets."""
    settings = result.settings
    metadata = {"wms.run_id": run.run_id, "wms.data_version": data_version, "wms.encoder": settings.encoder}
    onnx_path = export_onnx(result.model, settings.image_size, checkpoints / "model.onnx", metadata)
    served = score_as_served(onnx_segmenter(onnx_path), test_pairs)
    scores = served.scores.as_dict(prefix="test_")
    scores |= {f"pytorch_test_mean_{key}": getattr(result.test_scores, f"mean_{key}") for key in ("iou", "dice")}
    facts = {"best_epoch": result.best_epoch, "epochs_run": len(result.history), "train_seconds": round(result.seconds, 1)}
    facts |= {"resumed_at_epoch": result.resumed_at_epoch, "stopped_early": int(result.stopped_early)}
    run.log_epoch(result.best_epoch, scores | facts)
    run.set_tags({NOTES_TAG: "; ".join(result.notes)})
    model_uri = run.log_model(result.model, settings.image_size)
    run.log_file(result.checkpoint, "checkpoint")
    onnx_uri = run.log_file(onnx_path, "onnx")
    run.set_tags({ONNX_URI_TAG: onnx_uri})
    segmenter = Segmenter(TorchBackend(result.model), settings.image_size)
    run.log_image(prediction_sheet(segmenter, test_pairs), "test_predictions.png")
    run.log_image(worst_cases_sheet(segmenter, test_pairs, list(served.ious)), WORST_CASES_SHEET)
    return _Logged(model_uri, onnx_uri, scores, facts | {"training": "; ".join(result.notes)})


def _from_run(run, data_version: str, git_sha: str) -> TrainedModel:
    scores = {key: value for key, value in run.data.metrics.items() if key.startswith("test_")}
    return TrainedModel(
        run.info.run_id,
        run.data.tags[MODEL_URI_TAG],
        run.data.tags[ONNX_URI_TAG],
        run.data.params["encoder"],
        int(run.data.params["image_size"]),
        data_version,
        git_sha,
        scores,
        {key: run.data.tags[key] for key in ORIGIN_TAGS if key in run.data.tags},
    )


def _output(model: TrainedModel, mlflow: MlflowRegistry, registry, facts: dict) -> dg.Output[TrainedModel]:
    metadata = {key: dg.MetadataValue.float(value) for key, value in model.scores.items()}
    worst_cases = registry.artifact_url(mlflow.ui_url, model.run_id, WORST_CASES_SHEET)
    metadata |= {
        "mlflow_run": dg.MetadataValue.url(registry.run_url(mlflow.ui_url, model.run_id)),
        "mlflow_runs_by_score": dg.MetadataValue.url(registry.runs_by_score_url(mlflow.ui_url)),
        "worst_test_cases": dg.MetadataValue.md(f"[![worst test cases, from MLflow]({worst_cases})]({worst_cases})"),
        "model_uri": model.model_uri,
        "onnx_uri": model.onnx_uri,
        "encoder": model.encoder,
        "image_size": model.image_size,
        "data_version": model.data_version,
        "git_sha": model.git_sha,
        **model.origin,
        **facts,
    }
    return dg.Output(model, metadata=metadata)


@dg.asset(group_name=LINEAGE_GROUP, tags=MODEL_STAGE, kinds={"mlflow"})
def registered_model(
    context: dg.AssetExecutionContext, trained_model: TrainedModel, mlflow: MlflowRegistry
) -> dg.Output[RegisteredVersion]:
    """The trained model as a version of the registered model, with the alias `challenger` and its metrics as tags."""
    registry = mlflow.registry()
    existing = registry.version_of_run(trained_model.run_id)
    tags = {key: f"{value:.4f}" for key, value in trained_model.scores.items()}
    tags |= {
        "data_version": trained_model.data_version,
        "git_sha": trained_model.git_sha,
        "encoder": trained_model.encoder,
        "dagster_run_id": context.run_id,
        **trained_model.origin,
    }
    version = str(existing.version) if existing else registry.register(trained_model.model_uri, trained_model.run_id, tags)
    registry.client.set_registered_model_alias(mlflow.model_name, CHALLENGER, version)
    card = registry.write_model_card(version)
    return dg.Output(
        RegisteredVersion(version=version, model=trained_model),
        metadata={
            "model": mlflow.model_name,
            "version": version,
            "alias": CHALLENGER,
            "newly_registered": existing is None,
            "trained_on": trained_model.origin.get("trained_on", "unknown"),
            "model_card": dg.MetadataValue.md(card),
            "test_mean_iou": dg.MetadataValue.float(trained_model.test_iou),
            "mlflow_run": dg.MetadataValue.url(registry.run_url(mlflow.ui_url, trained_model.run_id)),
            **_last_gates(registry, version),
        },
    )


def _last_gates(registry, version: str) -> dict[str, dg.MetadataValue]:
    """The gates of the last version evaluated before this one: the checks of this run show only 'in progress'."""
    last = registry.last_gated_version(before=version)
    if last is None:
        return {}
    title = f"**version {last.version}** (aliases: {', '.join(last.aliases) or 'none'})\n\n"
    return {"last_completed_gates": dg.MetadataValue.md(title + gates_table(gate_outcomes(last.tags)))}


@dg.asset(group_name=LINEAGE_GROUP, tags=MODEL_STAGE, kinds={"mlflow"})
def champion_model(registered_model: RegisteredVersion, mlflow: MlflowRegistry) -> dg.Output[RegisteredVersion]:
    """The version that passed every blocking gate, now under the alias `champion` (runs only when the gates pass)."""
    registry = mlflow.registry()
    gates = gate_outcomes(registry.client.get_model_version(mlflow.model_name, registered_model.version).tags)
    reason = f"passed {len(gates)} gates: test IoU {registered_model.model.test_iou:.4f}"
    if NO_REGRESSION in gates:
        reason += f"; {gates[NO_REGRESSION].removeprefix(PASSED + ': ')}"
    previous = registry.promote(registered_model.version, CHAMPION, reason=reason)
    return dg.Output(
        registered_model,
        metadata={
            "model": mlflow.model_name,
            "champion_version": registered_model.version,
            "previous_champion": str(previous),
            "reason": reason,
            "gates": dg.MetadataValue.json(gates),
        },
    )
