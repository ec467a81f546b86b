"""MLflow tracking and model registry for WMS models: runs, versions and aliases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from urllib.parse import urlencode

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from PIL import Image

from wms.core.files import written_atomically
from wms.inference.model_card import model_card
from wms.registry.gates import gate_outcomes
from wms.training.settings import TrainSettings

CHALLENGER, STAGING, CHAMPION = "challenger", "staging", "champion"
"""Aliases: every new version is the challenger; staging is released to staging; champion serves production."""
ARCHIVED_TAG = "archived"
"""Tag of a version that was champion and was replaced or rolled back; its value says when and why."""
EVENT_TAG_PREFIX = "champion_event."
"""Tags of the registered model, one per move of `champion`, numbered: the champion's history."""
MODEL_URI_TAG = "wms_model_uri"
ONNX_URI_TAG = "wms_onnx_uri"
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
"""The tag MLflow 3's UI reads to open an experiment as classic ML (runs, metrics, models), not as GenAI (traces)."""
SCORES_VIEW = "wms-scores"
SCORES_VIEW_STATE = {
    "orderByKey": "metrics.`test_mean_iou`",
    "orderByAsc": False,
    "selectedColumns": [
        "attributes.`Models`",
        "metrics.`test_mean_iou`",
        "metrics.`test_mean_dice`",
        "metrics.`test_images_below_half`",
        "tags.`preset`",
        "tags.`trained_on`",
        "tags.`data_version`",
    ],
}
"""The runs list with the test scores as columns, best first: a view shared the way the UI's Share button does it
(an experiment tag `mlflow.sharedViewState.<key>` that a `viewStateShareKey` link opens), since the columns a
person sees otherwise are the browser's own choice and no API sets them."""
EXPERIMENT_TAGS = EXPERIMENT_KIND | {f"mlflow.sharedViewState.{SCORES_VIEW}": json.dumps(SCORES_VIEW_STATE)}
MODEL_DESCRIPTION = "U-Net that finds the digit window of water meters"


def gates_table(outcomes: dict[str, str], width: int = 100) -> str:
    """Gate results as a short Markdown table, one row per gate (short enough for Dagster to show it in place)."""
    rows = [f"| {name} | {outcome[:width].replace('|', '/')} |" for name, outcome in sorted(outcomes.items())]
    return "\n".join(["| gate | outcome |", "|---|---|", *rows])


@dataclass(frozen=True)
class ChampionEvent:
    """One move of the `champion` alias: which version became champion, which it replaced, when and why."""

    sequence: int
    time: str
    action: str
    version: str
    previous: str | None
    reason: str

    @property
    def tag_key(self) -> str:
        return f"{EVENT_TAG_PREFIX}{self.sequence:06d}"


def history_table(events: list[ChampionEvent]) -> str:
    """The champion's history as a Markdown table, newest first (the registered model's page in MLflow shows it)."""
    rows = [
        f"| {event.sequence} | {event.time} | {event.action} | {event.version} | {event.previous or '-'} | "
        f"{event.reason.replace('|', '/')} |"
        for event in reversed(events)
    ]
    header = "| # | when (UTC) | move | champion | was | why |\n|---|---|---|---|---|---|"
    return "\n".join(["## Champion history", "", header, *rows])


PROMOTE, ROLLBACK, SERVED = "promote", "rollback", "served"
"""The history's moves: `champion` set to a new version, set back to the one before, or (no move of the alias) the
champion took all of production's traffic after a canary and the version it replaced left service."""


def champion_stack(events: list[ChampionEvent]) -> list[str]:
    """The champions still to fall back to, oldest first: a promotion pushes its version, a rollback pops one."""
    stack: list[str] = []
    for event in events:
        if event.action == SERVED:
            continue
        if event.action == ROLLBACK:
            stack = stack[:-1] if len(stack) > 1 else stack
            if not stack or stack[-1] != event.version:
                stack.append(event.version)
        else:
            stack.append(event.version)
    return stack


def model_requirements() -> list[str]:
    """What loading a logged U-Net needs, pinned to what trained it. Given, not inferred: MLflow infers them by loading
    the model in a new interpreter, and logging a U-Net took 13.6 s that way against 0.3 s with them given (2 cores,
    2026-12-08)."""
    pinned = [f"{package}=={metadata.version(package)}" for package in ("segmentation-models-pytorch", "numpy")]
    return [*mlflow.pytorch.get_default_pip_requirements(), *pinned]


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
        info = mlflow.pytorch.log_model(
            model, name="model", input_example=example, serialization_format="pickle", pip_requirements=model_requirements()
        )
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
        return info.model_uri

    def log_image(self, image: Image.Image, file_name: str) -> None:
        mlflow.log_image(image, file_name)

    def log_file(self, path: Path, folder: str) -> str:
        """Log a file (a checkpoint, an ONNX model) under `folder` of the run's artefacts; return its runs:/ URI."""
        mlflow.log_artifact(str(path), artifact_path=folder)
        return f"runs:/{self.run_id}/{folder}/{path.name}"

    def set_tags(self, tags: dict[str, str]) -> None:
        mlflow.set_tags(tags)


@dataclass(frozen=True)
class VersionInfo:
    """What serving needs to know about a registered version."""

    version: str
    run_id: str
    image_size: int
    onnx_uri: str
    data_version: str
    trained_on: str = ""


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
    def training_run(
        self, params: dict, tags: dict[str, str], resume_run_id: str | None = None, name: str | None = None
    ) -> Iterator[TrainingRun]:
        """Start an MLflow run (called `name`) in the project's experiment, or resume an unfinished one (a training
        that was killed).

        The run ends when the block ends: FINISHED, or FAILED on an error.
        """
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        experiment_id = self._experiment_id()
        resumable = resume_run_id if resume_run_id and self._is_unfinished(resume_run_id) else None
        with mlflow.start_run(
            run_id=resumable, experiment_id=None if resumable else experiment_id, tags=tags, run_name=None if resumable else name
        ) as run:
            if resumable is None:
                mlflow.log_params(params)
            yield TrainingRun(run_id=run.info.run_id)

    def _is_unfinished(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.status in ("RUNNING", "FAILED", "KILLED")
        except MlflowException:
            return False

    def download(self, artifact_uri: str, destination: Path) -> Path:
        """Copy a logged artefact (runs:/RUN/path) to a folder; return the local path."""
        mlflow.set_tracking_uri(self.tracking_uri)
        destination.mkdir(parents=True, exist_ok=True)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(destination)))

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return self.client.create_experiment(
                self.experiment_name, artifact_location=self.artifact_location, tags=EXPERIMENT_TAGS
            )
        for key, value in EXPERIMENT_TAGS.items():
            if experiment.tags.get(key) != value:  # made before the tag was set, or changed since
                self.client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id

    def register(self, model_uri: str, run_id: str, tags: dict[str, str]) -> str:
        """Register a logged model as a new version of the model, tagged, with the alias `challenger`; return the version."""
        client = self.client
        try:
            client.get_registered_model(self.model_name)
        except MlflowException:
            client.create_registered_model(self.model_name, description=MODEL_DESCRIPTION)
        # An MLflow 3 logged model (models:/m-...) must be named by its id: a tracking server refuses it otherwise.
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        version = client.create_model_version(self.model_name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id)
        client.set_registered_model_alias(self.model_name, CHALLENGER, version.version)
        return str(version.version)

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, version, key, value)

    def write_model_card(self, version: str) -> str:
        """Render the version's model card from its tags (gates included) into its description; return it."""
        tags = self.client.get_model_version(self.model_name, version).tags
        card = model_card(version, tags, gate_outcomes(tags))
        self.client.update_model_version(self.model_name, version, description=card)
        return card

    def save_state_dict(self, version: str, path: Path) -> Path:
        """Write a registered version's weights as a state dict (the start of a fine-tuning); atomically."""
        import torch

        model = self.load_pytorch(f"models:/{self.model_name}/{version}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with written_atomically(path) as partial:
            torch.save(model.state_dict(), partial)
        return path

    def promote(self, version: str, alias: str = CHAMPION, reason: str = "") -> str | None:
        """Point `alias` at `version`; return the version it pointed at before (None if it was unset).

        A move of `champion` is recorded in the history and archives the version it replaces. If recording fails,
        the alias is put back, so the registry is never left half-changed; a move that a kill cut short (the alias
        moved, its history or tags not yet written) is finished first, so a rerun repairs it.
        """
        if alias == CHAMPION:
            self.finish_interrupted_move()
        previous = self.version_by_alias(alias)
        before = str(previous.version) if previous else None
        if before == str(version):
            return before
        self.client.set_registered_model_alias(self.model_name, alias, version)
        if alias == CHAMPION:
            self._record_champion_move(PROMOTE, str(version), before, reason or "promoted")
        return before

    def rollback(self, reason: str) -> ChampionEvent:
        """Move `champion` back to the champion before the current one; archive the one rolled back."""
        self.finish_interrupted_move()
        stack = champion_stack(self.champion_history())
        current = self.version_by_alias(CHAMPION)
        if current is None or len(stack) < 2:
            raise LookupError(f"{self.model_name} has no earlier champion to roll back to (history: {stack or 'empty'})")
        target = stack[-2]
        self.client.set_registered_model_alias(self.model_name, CHAMPION, target)
        return self._record_champion_move(ROLLBACK, target, str(current.version), reason or "rolled back")

    def finish_interrupted_move(self) -> ChampionEvent | None:
        """Make the history and the archive tags agree with the `champion` alias, which moves first.

        A process killed between moving the alias and writing its history event left the history one move short:
        the move is recorded now (a rollback when the alias went back to the champion before). One killed after the
        event, before the tags, gets its tags. Returns the event written, if one was missing."""
        current = self.version_by_alias(CHAMPION)
        if current is None:
            return None
        version, history = str(current.version), self.champion_history()
        last = history[-1] if history else None
        if last is not None and last.version == version:
            self._tag_the_move(last)
            return None
        stack = champion_stack(history)
        action = ROLLBACK if len(stack) > 1 and stack[-2] == version else PROMOTE
        note = "recorded after the move was cut short (the process stopped before writing its history)"
        return self._record_champion_move(action, version, last.version if last else None, note)

    def _tag_the_move(self, event: ChampionEvent) -> None:
        """The archive tags of a move, and the champion's history as a table in the model's description."""
        history = self.champion_history()
        self.client.update_registered_model(self.model_name, description=f"{MODEL_DESCRIPTION}\n\n{history_table(history)}")
        if event.previous is not None and event.previous != event.version:
            tags = self.client.get_model_version(self.model_name, event.previous).tags
            if ARCHIVED_TAG not in tags:
                verb = {ROLLBACK: "rolled back", SERVED: "retired from service"}.get(event.action, "replaced")
                note = f"{verb} by version {event.version} on {event.time}: {event.reason}"
                self.tag_version(event.previous, {ARCHIVED_TAG: note})
        self._unarchive(event.version)

    def aliases_by_version(self) -> dict[str, list[str]]:
        """Version -> its aliases (search results leave aliases out; the registered model lists them)."""
        try:
            aliases = self.client.get_registered_model(self.model_name).aliases
        except MlflowException:
            return {}
        by_version: dict[str, list[str]] = {}
        for alias, version in sorted(aliases.items()):
            by_version.setdefault(str(version), []).append(alias)
        return by_version

    def champion_history(self) -> list[ChampionEvent]:
        """Every move of `champion`, oldest first."""
        try:
            tags = self.client.get_registered_model(self.model_name).tags
        except MlflowException:
            return []
        events = [ChampionEvent(**json.loads(value)) for key, value in tags.items() if key.startswith(EVENT_TAG_PREFIX)]
        return sorted(events, key=lambda event: event.sequence)

    def record_served(self, version: str, retired: str, reason: str) -> ChampionEvent:
        """Record that the champion `version` took all of production's traffic and `retired` left service (after a
        canary); the alias does not move."""
        event = self._next_event(SERVED, version, retired, reason)
        self.client.set_registered_model_tag(self.model_name, event.tag_key, json.dumps(asdict(event)))
        self._tag_the_move(event)
        return event

    def _record_champion_move(self, action: str, version: str, previous: str | None, reason: str) -> ChampionEvent:
        try:
            event = self._next_event(action, version, previous, reason)
            self.client.set_registered_model_tag(self.model_name, event.tag_key, json.dumps(asdict(event)))
            self._tag_the_move(event)
        except Exception:
            self._restore_alias(CHAMPION, previous)
            raise
        return event

    def _next_event(self, action: str, version: str, previous: str | None, reason: str) -> ChampionEvent:
        history = self.champion_history()
        return ChampionEvent(
            sequence=(history[-1].sequence + 1) if history else 1,
            time=datetime.now(UTC).isoformat(timespec="seconds"),
            action=action,
            version=version,
            previous=previous,
            reason=reason,
        )

    def _unarchive(self, version: str) -> None:
        if ARCHIVED_TAG in self.client.get_model_version(self.model_name, version).tags:
            self.client.delete_model_version_tag(self.model_name, version, ARCHIVED_TAG)

    def _restore_alias(self, alias: str, version: str | None) -> None:
        if version is None:
            self.client.delete_registered_model_alias(self.model_name, alias)
        else:
            self.client.set_registered_model_alias(self.model_name, alias, version)

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

    def last_gated_version(self, before: str) -> ModelVersion | None:
        """The newest version older than `before` whose gates were evaluated (its tags hold their results)."""
        versions = self.client.search_model_versions(f"name = '{self.model_name}'")
        gated = [int(found.version) for found in versions if int(found.version) < int(before) and gate_outcomes(found.tags)]
        return self.client.get_model_version(self.model_name, str(max(gated))) if gated else None  # search leaves aliases out

    def version_of_run(self, run_id: str) -> ModelVersion | None:
        """The registered version made from this run, if there is one."""
        versions = self.client.search_model_versions(f"name = '{self.model_name}' and run_id = '{run_id}'")
        return versions[0] if versions else None

    @staticmethod
    def artifact_url(ui_url: str, run_id: str, path: str) -> str:
        """The address at which the MLflow UI serves one artifact of a run as a file (an image a browser shows)."""
        return f"{ui_url.rstrip('/')}/get-artifact?{urlencode({'path': path, 'run_uuid': run_id})}"

    def runs_by_score_url(self, ui_url: str) -> str:
        """The experiment's runs list in the MLflow UI, test scores as columns, best first (the shared view)."""
        query = urlencode({"workflowType": "machine_learning", "viewStateShareKey": SCORES_VIEW})
        return f"{ui_url.rstrip('/')}/#/experiments/{self._experiment_id()}/runs?{query}"

    def run_url(self, ui_url: str, run_id: str) -> str:
        run = self.client.get_run(run_id)
        return f"{ui_url.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run_id}"

    def describe(self, version: str) -> VersionInfo:
        """The run, input size, ONNX model and data version of a registered version."""
        model_version = self._version_of_uri(f"models:/{self.model_name}/{version}")
        run = self.client.get_run(model_version.run_id)
        if ONNX_URI_TAG not in run.data.tags:
            raise LookupError(f"version {version} of {self.model_name} has no ONNX model in its run: train it again to serve it")
        return VersionInfo(
            version=str(version),
            run_id=model_version.run_id,
            image_size=int(run.data.params["image_size"]),
            onnx_uri=run.data.tags[ONNX_URI_TAG],
            data_version=run.data.tags.get("data_version", ""),
            trained_on=model_version.tags.get("trained_on", run.data.tags.get("trained_on", "")),
        )

    def alias_uri(self, alias: str) -> str:
        return f"models:/{self.model_name}@{alias}"

    def resolve_version(self, model_uri: str) -> str:
        """The version number that models:/<name>@<alias> or models:/<name>/<n> points at; LookupError if none."""
        return str(self._version_of_uri(model_uri).version)

    def image_size_of(self, model_uri: str) -> int:
        """The input size a registered model was trained at (its run's image_size parameter)."""
        version = self._version_of_uri(model_uri)
        return int(self.client.get_run(version.run_id).data.params["image_size"])

    def settings_of(self, model_uri: str) -> TrainSettings:
        """The training settings a registered model's run recorded (a setting added since takes its default)."""
        version = self._version_of_uri(model_uri)
        return TrainSettings.from_params(self.client.get_run(version.run_id).data.params)

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
