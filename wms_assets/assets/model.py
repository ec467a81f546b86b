"""Model assets: training with MLflow tracking, registration as `challenger`, promotion to `champion`."""

import hashlib
import json
from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from wms.gitinfo import current_git_sha
from wms.predict import Segmenter, TorchBackend
from wms.report import prediction_sheet
from wms.tracking import CHALLENGER, CHAMPION, MODEL_URI_TAG
from wms.train import TrainSettings, code_fingerprint, train
from wms_assets.assets.data import VersionedDataset
from wms_assets.constants import GROUP_MODEL
from wms_assets.resources import MlflowRegistry

TRAINING_KEY_TAG = "wms_training_key"
DEFAULTS = TrainSettings()


class TrainingConfig(dg.Config):
    """How the U-Net is trained; the defaults fit a CPU and a few minutes."""

    encoder: str = Field(
        default=DEFAULTS.encoder, description="Encoder of the U-Net: resnet34, resnet18, mobilenet_v2, efficientnet-b0."
    )
    image_size: int = Field(default=DEFAULTS.image_size, description="Side of the square (letterboxed) model input, in pixels.")
    epochs: int = Field(default=DEFAULTS.epochs, description="Passes over the train split.")
    batch_size: int = Field(default=DEFAULTS.batch_size, description="Photos per optimizer step.")
    learning_rate: float = Field(default=DEFAULTS.learning_rate, description="Peak learning rate of the one-cycle schedule.")
    seed: int = Field(default=DEFAULTS.seed, description="Seed of weights, shuffling and augmentation.")
    threads: int = Field(default=DEFAULTS.threads, description="CPU threads for PyTorch.")
    device: str = Field(default=DEFAULTS.device, description="'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'.")
    reuse_finished_run: bool = Field(
        default=True,
        description="Reuse a finished MLflow run with the same settings, data version and code instead of retraining.",
    )


@dataclass(frozen=True)
class TrainedModel:
    run_id: str
    model_uri: str
    encoder: str
    image_size: int
    data_version: str
    git_sha: str
    test_iou: float
    test_dice: float


@dataclass(frozen=True)
class RegisteredVersion:
    version: str
    model: TrainedModel


def training_key(settings: TrainSettings, data_version: str) -> str:
    """Same settings, same data, same library code: the same model, so its run can be reused."""
    payload = json.dumps({"settings": settings.as_params(), "data": data_version, "code": code_fingerprint()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


@dg.asset(group_name=GROUP_MODEL, kinds={"pytorch", "mlflow"})
def trained_model(
    context: dg.AssetExecutionContext, config: TrainingConfig, dataset: VersionedDataset, mlflow: MlflowRegistry
) -> dg.Output[TrainedModel]:
    """A segmentation-models-pytorch U-Net trained on the train split and scored on the fixed test split."""
    settings = TrainSettings(**config.model_dump(exclude={"reuse_finished_run"}))
    registry, git_sha = mlflow.registry(), current_git_sha()
    key = training_key(settings, dataset.data_version)
    previous = registry.find_finished_run(TRAINING_KEY_TAG, key) if config.reuse_finished_run else None
    if previous is not None:
        context.log.info("reusing MLflow run %s: same settings, data and code", previous.info.run_id)
        model = _from_run(previous, settings, dataset.data_version, git_sha)
        return _output(model, mlflow, registry, reused=True)
    tags = {"dagster_run_id": context.run_id, "git_sha": git_sha, "data_version": dataset.data_version, TRAINING_KEY_TAG: key}
    model, seconds = _train_and_log(context, registry, dataset, settings, tags)
    return _output(model, mlflow, registry, reused=False, seconds=seconds)


def _train_and_log(
    context, registry, dataset: VersionedDataset, settings: TrainSettings, tags: dict
) -> tuple[TrainedModel, float]:
    """Train inside an MLflow run that records params, every epoch, the test scores, the model and an overlay PNG."""

    with registry.training_run(settings.as_params(), tags) as run:

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            run.log_epoch(epoch, metrics)
            context.log.info("epoch %d %s", epoch, metrics)

        result = train({split: dataset.pairs(split) for split in dataset.splits}, settings, on_epoch=on_epoch)
        scores = result.test_scores.as_dict(prefix="test_")
        run.log_epoch(result.best_epoch, scores | {"best_epoch": result.best_epoch, "train_seconds": result.seconds})
        model_uri = run.log_model(result.model, settings.image_size)
        segmenter = Segmenter(TorchBackend(result.model), settings.image_size)
        run.log_image(prediction_sheet(segmenter, dataset.pairs("test")), "test_predictions.png")
    model = TrainedModel(
        run.run_id,
        model_uri,
        settings.encoder,
        settings.image_size,
        dataset.data_version,
        tags["git_sha"],
        scores["test_mean_iou"],
        scores["test_mean_dice"],
    )
    return model, result.seconds


def _from_run(run, settings: TrainSettings, data_version: str, git_sha: str) -> TrainedModel:
    metrics = run.data.metrics
    return TrainedModel(
        run.info.run_id,
        run.data.tags[MODEL_URI_TAG],
        settings.encoder,
        settings.image_size,
        data_version,
        git_sha,
        metrics["test_mean_iou"],
        metrics["test_mean_dice"],
    )


def _output(
    model: TrainedModel, mlflow: MlflowRegistry, registry, reused: bool, seconds: float | None = None
) -> dg.Output[TrainedModel]:
    metadata = {
        "test_mean_iou": dg.MetadataValue.float(model.test_iou),
        "test_mean_dice": dg.MetadataValue.float(model.test_dice),
        "mlflow_run": dg.MetadataValue.url(registry.run_url(mlflow.ui_url, model.run_id)),
        "model_uri": model.model_uri,
        "encoder": model.encoder,
        "data_version": model.data_version,
        "git_sha": model.git_sha,
        "reused_previous_run": reused,
    }
    if seconds is not None:
        metadata["train_seconds"] = dg.MetadataValue.float(round(seconds, 1))
    return dg.Output(model, metadata=metadata)


@dg.asset(group_name=GROUP_MODEL, kinds={"mlflow"})
def registered_model(
    context: dg.AssetExecutionContext, trained_model: TrainedModel, mlflow: MlflowRegistry
) -> dg.Output[RegisteredVersion]:
    """The trained model as a version of the registered model, with the alias `challenger` and its metrics as tags."""
    registry = mlflow.registry()
    existing = registry.version_of_run(trained_model.run_id)
    tags = {
        "test_mean_iou": f"{trained_model.test_iou:.4f}",
        "test_mean_dice": f"{trained_model.test_dice:.4f}",
        "data_version": trained_model.data_version,
        "git_sha": trained_model.git_sha,
        "dagster_run_id": context.run_id,
    }
    version = str(existing.version) if existing else registry.register(trained_model.model_uri, trained_model.run_id, tags)
    registry.client.set_registered_model_alias(mlflow.model_name, CHALLENGER, version)
    return dg.Output(
        RegisteredVersion(version=version, model=trained_model),
        metadata={"model": mlflow.model_name, "version": version, "alias": CHALLENGER, "newly_registered": existing is None},
    )


@dg.asset(group_name=GROUP_MODEL, kinds={"mlflow"})
def champion_model(registered_model: RegisteredVersion, mlflow: MlflowRegistry) -> dg.Output[RegisteredVersion]:
    """The version that passed the gates, now under the alias `champion` (runs only when the gates pass)."""
    previous = mlflow.registry().promote(registered_model.version, CHAMPION)
    return dg.Output(
        registered_model,
        metadata={"model": mlflow.model_name, "champion_version": registered_model.version, "previous_champion": str(previous)},
    )
