"""MLflow tracking and model registry for WMS models: runs, versions and aliases."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from PIL import Image

CHALLENGER, CHAMPION = "challenger", "champion"
MODEL_URI_TAG = "wms_model_uri"


@dataclass
class TrainingRun:
    """The active MLflow run of one training; logs what the training produces."""

    run_id: str

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        mlflow.log_metrics(metrics, step=epoch)

    def log_model(self, model, image_size: int) -> str:
        """Log the PyTorch model; return its model URI."""
        import torch

        example = torch.zeros(1, 3, image_size, image_size).numpy()
        info = mlflow.pytorch.log_model(model, name="model", input_example=example, serialization_format="pickle")
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        return info.model_uri

    def log_image(self, image: Image.Image, file_name: str) -> None:
        mlflow.log_image(image, file_name)


@dataclass
class ModelRegistry:
    """One registered model in one MLflow tracking server (or local store)."""

    tracking_uri: str
    model_name: str
    experiment_name: str = "wms-unet"
    artifact_location: str | None = None

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    @contextmanager
    def training_run(self, params: dict, tags: dict[str, str]) -> Iterator[TrainingRun]:
        """Start an MLflow run in the project's experiment; it ends (FAILED on an error) when the block ends."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        experiment_id = self._experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run:
            mlflow.log_params(params)
            yield TrainingRun(run_id=run.info.run_id)

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        return self.client.create_experiment(self.experiment_name, artifact_location=self.artifact_location)

    def register(self, model_uri: str, run_id: str, tags: dict[str, str]) -> str:
        """Register a logged model as a new version of the model, tagged, with the alias `challenger`; return the version."""
        client = self.client
        try:
            client.get_registered_model(self.model_name)
        except MlflowException:
            client.create_registered_model(self.model_name, description="U-Net that finds the digit window of water meters")
        version = client.create_model_version(self.model_name, source=model_uri, run_id=run_id, tags=tags)
        client.set_registered_model_alias(self.model_name, CHALLENGER, version.version)
        return str(version.version)

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, version, key, value)

    def promote(self, version: str, alias: str = CHAMPION) -> str | None:
        """Point `alias` at `version`; return the version it pointed at before (None if it was unset)."""
        previous = self.version_by_alias(alias)
        self.client.set_registered_model_alias(self.model_name, alias, version)
        return str(previous.version) if previous else None

    def version_by_alias(self, alias: str) -> ModelVersion | None:
        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None

    def find_finished_run(self, tag: str, value: str):
        """The newest finished run of the experiment whose tag `tag` equals `value`, or None."""
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return None
        runs = self.client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.{tag} = '{value}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0] if runs else None

    def version_of_run(self, run_id: str) -> ModelVersion | None:
        """The registered version made from this run, if there is one."""
        versions = self.client.search_model_versions(f"name = '{self.model_name}' and run_id = '{run_id}'")
        return versions[0] if versions else None

    def run_url(self, ui_url: str, run_id: str) -> str:
        run = self.client.get_run(run_id)
        return f"{ui_url.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run_id}"

    def alias_uri(self, alias: str) -> str:
        return f"models:/{self.model_name}@{alias}"

    def image_size_of(self, model_uri: str) -> int:
        """The input size a registered model was trained at (its run's image_size parameter)."""
        version = self._version_of_uri(model_uri)
        return int(self.client.get_run(version.run_id).data.params["image_size"])

    def _version_of_uri(self, model_uri: str) -> ModelVersion:
        name, _, selector = model_uri.removeprefix("models:/").partition("@")
        try:
            if selector:
                return self.client.get_model_version_by_alias(name, selector)
            name, _, number = model_uri.removeprefix("models:/").partition("/")
            return self.client.get_model_version(name, number)
        except MlflowException as error:
            raise LookupError(f"no registered model version at {model_uri!r} in {self.tracking_uri}: {error.message}") from error

    def load_pytorch(self, model_uri: str):
        """Load a registered PyTorch model; raise LookupError with the reason when the URI resolves to nothing."""
        mlflow.set_registry_uri(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            return mlflow.pytorch.load_model(model_uri, map_location="cpu")
        except (MlflowException, OSError) as error:
            raise LookupError(f"cannot load model {model_uri!r} from {self.tracking_uri}: {error}") from error
