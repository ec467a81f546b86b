"""Typed Dagster resources: thin, configurable handles on the wms library's services."""

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
from pydantic import Field

from wms.core.files import copy_atomically
from wms.core.gitinfo import PROJECT_ROOT, changed_files, head_sha
from wms.data.synthetic import SyntheticSpec, generate_dataset
from wms.data.versioning import DvcRepository, pull_pointer
from wms.data.watched import FOLDER, POINTER, SYNTHETIC, WatchedSource, read_watched
from wms.deployment.stages import CHART_DIR
from wms.monitoring.canary import CanaryError, CanaryPolicy, FigureReader, read_figures
from wms.monitoring.prometheus import LOCAL_PROMETHEUS_URL
from wms.registry.model_registry import ModelRegistry
from wms.serving.smoke import SmokeResult, smoke_test
from wms.serving.torchserve import LocalTorchServe
from wms.training.train import MODEL_SOURCES


class RawImageSource(dg.ConfigurableResource):
    """Where the photos come from: a real folder in the Kaggle layout, a DVC pointer, or a generated synthetic set.

    On the local profile the source is read from the watched-source record at each use (`state_file`), so the UI,
    the daemon and `wms run` agree on it whichever process asks; `source_dir` or `dvc_pointer` fix it instead.
    """

    source_dir: str | None = Field(default=None, description="A folder with images/ and masks/ (wins over the record).")
    dvc_pointer: str | None = Field(
        default=None, description="A .dvc pointer in a Git+DVC checkout: its data is pulled and read (wins over source_dir)."
    )
    state_file: str | None = Field(
        default=None, description="The watched-source record (wms data use); unset with no folder or pointer: synthetic."
    )
    synthetic_dir: str = Field(description="Where the synthetic data set is generated.")
    synthetic_count: int = Field(default=160, description="Number of synthetic image/mask pairs.")
    synthetic_seed: int = Field(default=0, description="Seed of the synthetic generator.")

    def watched(self) -> WatchedSource:
        """The source in force now (raises WatchedSourceError when the record is damaged)."""
        if self.dvc_pointer:
            return WatchedSource(POINTER, self.dvc_pointer)
        if self.source_dir:
            return WatchedSource(FOLDER, self.source_dir)
        return read_watched(Path(self.state_file)) if self.state_file else WatchedSource(SYNTHETIC)

    def folder(self, source: WatchedSource | None = None) -> Path:
        """The folder the photos are read from (pulled or generated only by `resolve`)."""
        source = source or self.watched()
        if source.kind == POINTER:
            return Path(source.location).with_suffix("")
        return Path(source.location) if source.kind == FOLDER else Path(self.synthetic_dir)

    def resolve(self, source: WatchedSource | None = None) -> Path:
        """The folder to read: pulled as the DVC pointer says, or generated when synthetic and missing or changed."""
        source = source or self.watched()
        if source.kind == POINTER:
            return pull_pointer(Path(source.location))
        if source.kind == FOLDER:
            return self.folder(source)
        spec = SyntheticSpec(count=self.synthetic_count, seed=self.synthetic_seed)
        root, stamp = Path(self.synthetic_dir), Path(self.synthetic_dir) / ".synthetic-spec.json"
        if not stamp.exists() or json.loads(stamp.read_text()) != asdict(spec):
            if root.exists():
                for sub in ("images", "masks"):
                    for path in (root / sub).glob("*"):
                        path.unlink()
            generate_dataset(root, spec)
            stamp.write_text(json.dumps(asdict(spec)))
        return root


class DvcStorage(dg.ConfigurableResource):
    """The DVC repository that versions the data set, and its remote (a folder, or S3)."""

    repo_dir: str = Field(description="Folder of the DVC repository (created when missing).")
    remote_url: str = Field(description="DVC remote: a local folder or s3://bucket/prefix.")
    endpoint_url: str | None = Field(default=None, description="S3 endpoint, for S3-compatible servers.")

    def repository(self) -> DvcRepository:
        return DvcRepository(root=Path(self.repo_dir), remote_url=self.remote_url, endpoint_url=self.endpoint_url)


class MlflowRegistry(dg.ConfigurableResource):
    """MLflow tracking and model registry.

    dagster-mlflow's `mlflow_tracking` is a legacy function resource that opens a run when a step starts; WMS
    needs a typed resource that opens the run around training only and also drives the registry's aliases.
    """

    tracking_uri: str = Field(description="MLflow tracking URI (sqlite:///... locally, http(s)://... on AWS).")
    model_name: str = Field(default="wms-unet", description="Name of the registered model.")
    experiment_name: str = Field(default="wms-unet", description="MLflow experiment of the training runs.")
    artifact_location: str | None = Field(default=None, description="Artifact root of a new experiment.")
    ui_url: str = Field(default="http://127.0.0.1:5000", description="Address of the MLflow UI, for links in Dagster.")

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.tracking_uri, self.model_name, self.experiment_name, self.artifact_location)


class PromotionPolicy(dg.ConfigurableResource):
    """The thresholds the blocking checks apply before a model version is promoted and served; a value out of range is
    refused when the definitions load, before anything trains."""

    min_test_iou: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Lowest mean per-image IoU on the test split for champion (0 to 1)."
    )
    min_test_dice: float = Field(
        default=0.6, ge=0.0, le=1.0, description="Lowest mean per-image Dice on the test split for champion (0 to 1)."
    )
    regression_margin: float = Field(
        default=0.005,
        ge=0.0,
        lt=1.0,
        description="How much worse in mean IoU than the champion a challenger may be (0 to 1): promoted only when the "
        "lower end of the interval of the paired difference is at or above minus this.",
    )
    regression_confidence: float = Field(
        default=0.9,
        gt=0.5,
        lt=1.0,
        description="Confidence of the two-sided bootstrap interval of the paired IoU difference (0.9: its lower end is a "
        "one-sided 95 % bound).",
    )
    max_onnx_probability_gap: float = Field(default=1e-3, ge=0.0, description="Largest allowed ONNX vs PyTorch probability gap.")
    max_p95_latency_ms: float = Field(
        default=1000.0, gt=0.0, description="Largest p95 CPU latency of the exported model, photo to mask, both looks."
    )
    latency_threads: int = Field(
        default=1, ge=1, description="ONNX Runtime threads for the latency gate (a serving worker's share)."
    )

    def summary(self) -> str:
        """The thresholds in one line, as a training run records what its model will be judged by."""
        return (
            f"test IoU >= {self.min_test_iou}, Dice >= {self.min_test_dice}; not worse than the champion by more than "
            f"{self.regression_margin} ({self.regression_confidence:.0%} interval); ONNX gap <= "
            f"{self.max_onnx_probability_gap}; p95 <= {self.max_p95_latency_ms:g} ms"
        )


class DataQualityPolicy(dg.ConfigurableResource):
    """What the data set must show before a model is trained on it."""

    min_valid_pairs: int = Field(default=30, description="Fewest valid image/mask pairs to train on.")
    max_rejection_rate: float = Field(default=0.1, description="Largest share of rejected files.")
    max_ambiguous_mask_fraction: float = Field(
        default=0.01, description="Largest share of grey (neither black nor white) pixels in a mask."
    )
    split_tolerance: float = Field(default=0.1, description="Largest deviation of a split's share from 70/15/15.")


class TrainingWorkspace(dg.ConfigurableResource):
    """Where trainings keep their per-epoch checkpoints until their MLflow run has finished."""

    checkpoint_root: str = Field(description="Folder of checkpoints, one subfolder per training key.")

    def checkpoints(self, training_key: str) -> Path:
        return Path(self.checkpoint_root) / training_key

    def parent_weights(self, version: str) -> Path:
        """Where the weights of a registered version are kept while a retrain fine-tunes them."""
        return Path(self.checkpoint_root) / "parents" / f"version-{version}.pt"


class ServingWorkspace(dg.ConfigurableResource):
    """Where ONNX files, model archives and image build contexts are written."""

    root: str = Field(description="Folder for serving artefacts.")

    def path(self, *parts: str) -> Path:
        folder = Path(self.root).joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


class ImageBuilder(dg.ConfigurableResource):
    """Builds and pushes the serving image when both a builder and a repository are configured (wms.deployment.container_image).

    On ECR (<account>.dkr.ecr.<region>.amazonaws.com/<name>) the builder first logs in with a token from
    ecr:GetAuthorizationToken in the repository's own region, so there is no region or password to set. Releases use
    the pushed digest, never a tag.
    """

    builder: str | None = Field(
        default=None, description="'buildah' (no daemon) or 'docker' to build images; unset builds nothing."
    )
    repository: str | None = Field(
        default=None, description="Image repository, e.g. <account>.dkr.ecr.<region>.amazonaws.com/wms-serving."
    )
    tls_verify: bool = Field(default=True, description="Verify the registry's TLS certificate (off only for a local registry).")
    base_image: str | None = Field(
        default=None,
        description="The serving image's base (build arg BASE_IMAGE); unset: python:3.11-slim-bookworm from Docker Hub. "
        "Point it at a mirror (an ECR pull-through cache) where the builder cannot reach Docker Hub.",
    )
    onnxruntime: str = Field(
        default="gpu", description="'gpu' (onnxruntime-gpu with CUDA 13, production) or 'cpu' (build arg ONNXRUNTIME)."
    )
    ca_bundle: str | None = Field(
        default=None,
        description="buildah only: a CA bundle mounted over the image's during RUN steps, for builds behind a "
        "TLS-intercepting proxy.",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.builder and self.repository)

    def build_options(self) -> dict:
        """The keyword arguments of wms.deployment.container_image.build_and_push besides the context and the repository."""
        build_args = {"ONNXRUNTIME": self.onnxruntime, **({"BASE_IMAGE": self.base_image} if self.base_image else {})}
        return {
            "builder": self.builder,
            "tls_verify": self.tls_verify,
            "build_args": build_args,
            "ca_bundle": Path(self.ca_bundle) if self.ca_bundle else None,
        }


@dataclass(frozen=True)
class Deployment:
    """A model version running in a stage, and the address that answers for it."""

    stage: str
    url: str
    previous_version: str | None
    revision: str | None = None


class ReleaseTarget(dg.ConfigurableResource):
    """Where a stage's release goes: a TorchServe on this machine (local) or a Helm release on EKS (aws)."""

    def deploy(self, stage: str, model_name: str, version: str, archive: Path, image_reference: str | None) -> Deployment:
        """Serve this version in the stage; implemented by LocalModelServer and HelmRelease."""
        raise NotImplementedError(f"{type(self).__name__} does not release")

    def bearer_token(self) -> str | None:
        """The token the service wants on /predictions (None: no token)."""
        return None

    def smoke_test(self, deployment: Deployment, model_name: str, version: str) -> SmokeResult:
        """A photo sent to the version's own path (/predictions/<model>/<version>): locally the staged version
        answers there while the version in service keeps every request that names none."""
        return smoke_test(deployment.url, model_name, version, self.bearer_token(), pinned=True)

    def in_service(self, model_name: str) -> str | None:
        """The version production serves now (None: nothing, or this target cannot tell)."""
        return None

    def start_canary(self, model_name: str, version: str, archive: Path, image_reference: str | None) -> Deployment:
        """Run `version` beside the version in service with no share of the traffic yet; return production's address."""
        raise NotImplementedError(f"{type(self).__name__} does not run canaries")

    def set_canary_weight(self, model_name: str, weight: int) -> None:
        """Send the candidate `weight` percent of the requests that name no version."""
        raise NotImplementedError(f"{type(self).__name__} does not run canaries")

    def promote_canary(self, model_name: str) -> str:
        """The candidate takes all the traffic and the old version is retired; return the retired version."""
        raise NotImplementedError(f"{type(self).__name__} does not run canaries")

    def retire_canary(self, model_name: str) -> str:
        """All traffic back to the version in service, the candidate retired; return the candidate."""
        raise NotImplementedError(f"{type(self).__name__} does not run canaries")


@dataclass(frozen=True)
class CanarySplit:
    """The TrafficSplit of wms.monitoring.canary on a release target."""

    target: ReleaseTarget
    model_name: str

    def set_weight(self, weight: int) -> None:
        self.target.set_canary_weight(self.model_name, weight)


_DEFAULT = CanaryPolicy()


class CanaryAnalysis(dg.ConfigurableResource):
    """How a new champion takes production's traffic: beside the version in service, in rising shares, each judged on
    Prometheus's figures of both versions (wms.monitoring.canary), then promoted or rolled back; or, disabled, all at once."""

    enabled: bool = Field(
        default=False,
        description="Release to production as a canary when a version is in service (needs Prometheus scraping the "
        "handler's metrics, and traffic: locally `wms monitor start` and clients).",
    )
    prometheus_url: str = Field(default=LOCAL_PROMETHEUS_URL, description="Prometheus that scrapes the serving handler.")
    stage: str = Field(default="local", description="The `stage` label of production's series in Prometheus.")
    steps: list[int] = Field(default=list(_DEFAULT.steps), description="The candidate's share at each step, percent, up to 100.")
    window_s: int = Field(default=_DEFAULT.window_s, description="Seconds of traffic each step is judged on.")
    min_requests: int = Field(default=_DEFAULT.min_requests, description="Fewest requests per version for a verdict.")
    max_error_ratio_increase: float = Field(
        default=_DEFAULT.max_error_ratio_increase,
        description="How far its server-error ratio may exceed the other's.",
    )
    max_p95_ratio: float = Field(default=_DEFAULT.max_p95_ratio, description="How many times the other's p95 it may take.")
    p95_slack_s: float = Field(default=_DEFAULT.p95_slack_s, description="Latency differences below this are noise.")
    interval_s: float = Field(default=_DEFAULT.interval_s, description="Seconds between questions while a step has no verdict.")
    max_step_s: int = Field(
        default=_DEFAULT.max_step_s, description="Seconds a step may go without a verdict before the canary is rolled back."
    )

    def policy(self) -> CanaryPolicy:
        """The policy as wms.monitoring.canary checks it (ValueError names what cannot work)."""
        return CanaryPolicy(
            steps=tuple(self.steps),
            window_s=self.window_s,
            min_requests=self.min_requests,
            max_error_ratio_increase=self.max_error_ratio_increase,
            max_p95_ratio=self.max_p95_ratio,
            p95_slack_s=self.p95_slack_s,
            interval_s=self.interval_s,
            max_step_s=self.max_step_s,
        )

    def reader(self, model_name: str) -> FigureReader:
        return lambda version: read_figures(self.prometheus_url, model_name, version, self.window_s, self.stage)

    def check_prometheus(self, model_name: str, version: str) -> None:
        """Ask Prometheus once before anything changes; CanaryError says what did not answer."""
        try:
            self.reader(model_name)(version)
        except CanaryError as error:
            raise CanaryError(f"{error}: start it (`wms monitor start` locally) or point the canary policy elsewhere") from error


class LocalModelServer(ReleaseTarget):
    """A TorchServe on this machine, bound to the loopback interface.

    The local profile has one server for both stages: the staging release starts or updates it and is smoke-tested,
    the production release finds the same version there and confirms it.
    """

    home: str = Field(description="TorchServe's folder: config, model store, logs.")
    host: str = Field(default="127.0.0.1", description="Address TorchServe binds to.")
    inference_port: int = Field(default=8080, description="Inference API port.")
    management_port: int = Field(default=8081, description="Management API port (loopback only).")
    metrics_port: int = Field(default=8082, description="Prometheus metrics port.")
    worker_port: int = Field(default=9000, description="First port (Unix socket suffix) of the Python workers.")
    grpc_inference_port: int = Field(default=8084, description="gRPC inference port (loopback; TorchServe always opens it).")
    grpc_management_port: int = Field(default=8085, description="gRPC management port (loopback).")
    workers: int = Field(default=1, description="Workers per model (one per model on 2 cores).")
    handler_metrics_port: int = Field(default=8083, description="Port of the handler's own Prometheus metrics.")
    backend_port: int = Field(
        default=8086, description="TorchServe's own inference port, behind nginx (loopback; nginx takes the next one too)."
    )

    @classmethod
    def on_port(cls, home: Path, port: int) -> "LocalModelServer":
        """The server whose ports run on from `port` (LocalTorchServe.on_port)."""
        server = LocalTorchServe.on_port(home, port)
        ports = ("inference", "management", "metrics", "handler_metrics", "grpc_inference", "grpc_management", "backend")
        return cls(home=str(home), **{f"{name}_port": getattr(server, f"{name}_port") for name in ports})

    def server(self) -> LocalTorchServe:
        return LocalTorchServe(
            home=Path(self.home),
            host=self.host,
            inference_port=self.inference_port,
            management_port=self.management_port,
            metrics_port=self.metrics_port,
            worker_port=self.worker_port,
            grpc_inference_port=self.grpc_inference_port,
            grpc_management_port=self.grpc_management_port,
            workers=self.workers,
            handler_metrics_port=self.handler_metrics_port,
            backend_port=self.backend_port,
        )

    def deploy(self, stage: str, model_name: str, version: str, archive: Path, image_reference: str | None) -> Deployment:
        """Staging loads the version beside the one in service and smoke-tests it on its own path; prod switches."""
        server = self.server()
        stored = self._stored(server, archive)
        before = server.served_version(model_name)
        if stage == "staging":
            server.stage(stored, model_name, version)
        else:
            server.deploy(stored, model_name, version)
        return Deployment(stage, server.inference_url, before)

    @staticmethod
    def _stored(server: LocalTorchServe, archive: Path) -> Path:
        server.model_store.mkdir(parents=True, exist_ok=True)
        stored = server.model_store / archive.name
        if stored.resolve() != archive.resolve():
            copy_atomically(archive, stored)
        return stored

    def in_service(self, model_name: str) -> str | None:
        return self.server().served_version(model_name)

    def start_canary(self, model_name: str, version: str, archive: Path, image_reference: str | None) -> Deployment:
        server = self.server()
        in_service = server.served_version(model_name)
        server.start_canary(self._stored(server, archive), model_name, version, 0)
        return Deployment("prod", server.inference_url, in_service)

    def set_canary_weight(self, model_name: str, weight: int) -> None:
        self.server().set_canary_weight(model_name, weight)

    def promote_canary(self, model_name: str) -> str:
        return self.server().promote_canary(model_name)

    def retire_canary(self, model_name: str) -> str:
        return self.server().retire_canary(model_name)

    def bearer_token(self) -> str | None:
        server = self.server()
        return server.api_key_file.read_text().strip() if server.api_key_file else None


class HelmRelease(ReleaseTarget):
    """The serving chart (helm/wms-serving) released with Helm into the stage's namespace on EKS.

    `helm upgrade --install` with rollback on failure and wait (wms.deployment.helm_release): a release whose pods do not become
    ready is rolled back by Helm and the asset fails with the reason; then /ping must answer through the Service.
    """

    chart_dir: str = Field(default=str(PROJECT_ROOT / CHART_DIR), description="Folder of the serving chart.")
    kubeconfig: str | None = Field(
        default=None, description="kubeconfig file; unset uses KUBECONFIG, ~/.kube/config or the pod's service account."
    )
    timeout_seconds: int = Field(default=600, description="How long Helm waits for the pods to be ready before it rolls back.")
    api_token: str | None = Field(default=None, description="Bearer token of the service (the wms-api-token Secret's value).")

    def deploy(self, stage: str, model_name: str, version: str, archive: Path, image_reference: str | None) -> Deployment:
        from wms.deployment.helm_release import check_ping, service_url, upgrade

        if not image_reference:
            raise ValueError(
                f"the {stage} release needs the serving image pushed and pinned by digest, and none was built:"
                " configure the image builder (WMS_ECR_REPOSITORY) so that serving_image builds and pushes it"
            )
        revision = upgrade(stage, version, image_reference, **self._connection())
        url = service_url(stage)
        check_ping(url)
        return Deployment(stage, url, None, str(revision))

    def bearer_token(self) -> str | None:
        return self.api_token

    def _connection(self) -> dict:
        kubeconfig = Path(self.kubeconfig) if self.kubeconfig else None
        return {"kubeconfig": kubeconfig, "timeout_s": self.timeout_seconds, "chart_dir": Path(self.chart_dir)}

    def in_service(self, model_name: str) -> str | None:
        from wms.deployment.helm_release import released

        found = released("prod", kubeconfig=self._connection()["kubeconfig"])
        return found.version if found else None

    def start_canary(self, model_name: str, version: str, archive: Path, image_reference: str | None) -> Deployment:
        """The candidate's release (wms-serving-canary) beside the one in service in model-prod, answering /ping."""
        from wms.deployment.helm_release import CANARY_RELEASE, check_ping, service_url, start_canary

        if not image_reference:
            raise ValueError("a canary on EKS runs the candidate's serving image and none was built: set WMS_ECR_REPOSITORY")
        in_service = self.in_service(model_name)
        start_canary("prod", version, image_reference, **self._connection())
        check_ping(service_url("prod", CANARY_RELEASE))
        return Deployment("prod", service_url("prod"), in_service)

    def set_canary_weight(self, model_name: str, weight: int) -> None:
        from wms.deployment.helm_release import set_canary_weight

        set_canary_weight("prod", weight, **self._connection())

    def promote_canary(self, model_name: str) -> str:
        from wms.deployment.helm_release import promote_canary

        return promote_canary("prod", **self._connection())

    def retire_canary(self, model_name: str) -> str:
        from wms.deployment.helm_release import retire_canary

        return str(retire_canary("prod", **self._connection()))


class DriftPolicy(dg.ConfigurableResource):
    """Where the served photos' statistics are read, and when their distance from the training photos is drift."""

    prometheus_url: str = Field(default=LOCAL_PROMETHEUS_URL, description="Prometheus that scrapes the handler's metrics.")
    stage: str = Field(default="local", description="The stage whose traffic is compared (the `stage` label).")
    model_name: str = Field(default="wms-unet", description="The served model (the `model` label).")
    window: str = Field(default="1d", description="How far back the served photos are counted (a PromQL duration).")
    psi_threshold: float = Field(default=0.25, description="PSI above which a statistic has drifted.")
    min_photos: int = Field(default=100, description="Fewest served photos in the window for a verdict.")
    retrain_on_drift: bool = Field(default=False, description="Let the drift sensor request a retrain.")
    retrain_after: int = Field(default=3, description="Consecutive drift warnings before a retrain is requested.")

    def selector(self) -> str:
        return f'stage="{self.stage}",model="{self.model_name}"'


class Alerts(dg.ConfigurableResource):
    """Where Dagster's failures are reported: a webhook (Slack-style JSON {"text": ...}) or, unset, the sensor's log."""

    webhook_url: str | None = Field(default=None, description="POSTed a JSON {'text': ...} per failure; unset only logs.")

    def notify(self, text: str) -> bool:
        """Send the text; False (and nothing raised) when there is no webhook or it did not answer 2xx."""
        if not self.webhook_url:
            return False
        request = urllib.request.Request(
            self.webhook_url, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, TimeoutError):
            return False


class CodeCheckout(dg.ConfigurableResource):
    """The Git checkout of the project's code, which the code sensor watches for new commits."""

    path: str = Field(description="Root of the Git checkout.")
    training_paths: list[str] = Field(
        default=list(MODEL_SOURCES),
        description="Paths (files or folders) whose change at a new commit calls for a retrain: the code that shapes a model.",
    )

    def head(self) -> str:
        return head_sha(Path(self.path))

    def training_changes(self, old: str, new: str) -> list[str]:
        """Files between two commits that belong to the training code or configuration."""
        return [name for name in changed_files(Path(self.path), old, new) if name.startswith(tuple(self.training_paths))]
