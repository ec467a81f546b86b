"""TorchServe handler: photo in, mask of the digit window out, with ONNX Runtime doing the inference.

TorchServe calls the module-level `handle(data, context)`: once with data=None to load the model, then with
each batch of requests (dynamic batching: batchSize and maxBatchDelay in the archive's model-config.yaml). Every
item of a batch succeeds or fails on its own: a broken request gets a 4xx and a JSON error naming the problem,
and the others in its batch are answered as usual.

Settings come from the worker's environment, which the serving image and the local server set:
  WMS_API_KEY_FILE            file holding the bearer token that clients must send (unset: no token asked)
  WMS_WORKERS_PER_MODEL       workers sharing the CPU quota (ONNX Runtime threads = quota / workers)
  WMS_HANDLER_METRICS_PORT    port of the handler's Prometheus metrics (unset: not exposed)
  WMS_HANDLER_METRICS_ADDRESS address they listen on (default 127.0.0.1; the image: 0.0.0.0, for Prometheus in the cluster)
  PROMETHEUS_MULTIPROC_DIR    folder where the workers' metrics meet (see wms.inference.service_metrics)
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wms.inference.imaging import bounding_box, mask_to_png
from wms.inference.model_card import MODEL_CARD_FILE, notice
from wms.inference.predict import Look, Segmenter, window_polygon
from wms.inference.service_metrics import HandlerMetrics
from wms.inference.uploads import INTERNAL_ERROR, DecodedPhoto, PhotoLimits, PhotoRejected, decode_photo

logger = logging.getLogger(__name__)

CAUSE_HEADER, VERSION_HEADER = "X-WMS-Cause", "X-WMS-Model-Version"
"""Headers on the handler's own 5xx answers (serving/nginx.conf.template reads them)."""
PHOTO_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/x-ms-bmp", "application/octet-stream")
"""Content types of a raw photo body; multipart/form-data with one file part is accepted too."""


def cpu_quota() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU limit (a container's quota)."""
    allowed = len(os.sched_getaffinity(0))
    limit = _cgroup_cpu_limit()
    return max(1, min(allowed, math.ceil(limit)) if limit else allowed)


def _cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by cgroup v2 (cpu.max) or v1 (cpu.cfs_quota_us / cpu.cfs_period_us); None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class HandlerSettings:
    api_key: str | None = None
    workers_per_model: int = 1
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"

    @classmethod
    def from_environment(cls, environ=os.environ) -> HandlerSettings:
        key_file = environ.get("WMS_API_KEY_FILE")
        api_key = None
        if key_file:
            api_key = Path(key_file).read_text().strip()  # a missing secret stops the worker: never serve unguarded
            if not api_key:
                raise ValueError(f"WMS_API_KEY_FILE {key_file} is empty: put the API token in it")
        port = environ.get("WMS_HANDLER_METRICS_PORT")
        return cls(
            api_key=api_key,
            workers_per_model=max(1, int(environ.get("WMS_WORKERS_PER_MODEL", "1"))),
            metrics_port=int(port) if port else None,
            metrics_address=environ.get("WMS_HANDLER_METRICS_ADDRESS", "127.0.0.1"),
        )

    @property
    def intra_op_threads(self) -> int:
        return max(1, cpu_quota() // self.workers_per_model)


class WindowSegmenter:
    """Loads the ONNX model of a model archive and answers batches of photos."""

    def __init__(self, limits: PhotoLimits | None = None) -> None:
        self.limits = limits or PhotoLimits()
        self.session = None
        self.segmenter: Segmenter | None = None
        self.settings = HandlerSettings()
        self.metrics: HandlerMetrics | None = None
        self.model_name = ""
        self.model_version = ""
        self.trained_on = "unknown"

    def initialize(self, context, settings: HandlerSettings | None = None) -> None:
        import onnxruntime

        self.settings = settings or HandlerSettings.from_environment()
        model_dir = Path(context.system_properties["model_dir"])
        manifest = context.manifest["model"]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.settings.intra_op_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in onnxruntime.get_available_providers()]
        self.session = onnxruntime.InferenceSession(str(model_dir / manifest["serializedFile"]), options, providers=providers)
        image_size = int(self.session.get_modelmeta().custom_metadata_map["wms.image_size"])
        self.segmenter = Segmenter(backend=self._run_model, image_size=image_size)
        self.model_name, self.model_version = manifest["modelName"], manifest.get("modelVersion", "")
        card = model_dir / MODEL_CARD_FILE
        self.trained_on = (json.loads(card.read_text()).get("trained_on") if card.exists() else None) or "unknown"
        self.metrics = HandlerMetrics(self.model_name, self.model_version)
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.metrics_port, self.settings.metrics_address)
        logger.info(
            "loaded %s version %s with %s, %d threads, token %s",
            self.model_name,
            self.model_version,
            self.session.get_providers(),
            self.settings.intra_op_threads,
            "required" if self.settings.api_key else "not required",
        )

    def handle(self, requests: list[dict], context) -> list[dict]:
        started = time.perf_counter()
        self.metrics.batch(len(requests))
        photos, errors = self._timed("preprocess", self.preprocess, requests, context)
        try:
            answers = self._timed("inference", self.inference, photos)
            responses = self._timed("postprocess", self.postprocess, photos, answers)
        except Exception:  # answered in JSON and counted as this version's server error (a canary is judged on it)
            logger.exception("%s version %s failed on a batch of %d photos", self.model_name, self.model_version, len(photos))
            errors |= {index: PhotoRejected("internal_error", INTERNAL_ERROR, 500) for index in photos}
            photos, responses = {}, {}
        seconds = time.perf_counter() - started
        for index in range(len(requests)):
            context.set_response_content_type(index, "application/json")
        for index, error in errors.items():
            context.set_response_status(error.status, str(error), idx=index)
            if error.status >= 500:  # so the front door tells this answer from TorchServe's own 5xx, which it rewrites
                context.set_response_header(index, CAUSE_HEADER, error.cause)
                context.set_response_header(index, VERSION_HEADER, self.model_version)
            responses[index] = {"error": str(error), "cause": error.cause, **self._model_fields()}
            self.metrics.request(seconds, error.cause)
        for _ in photos:
            self.metrics.request(seconds, "ok")
        return [responses[index] for index in range(len(requests))]

    def _timed(self, name: str, step, *args):
        started = time.perf_counter()
        result = step(*args)
        self.metrics.step(name, time.perf_counter() - started)
        return result

    def preprocess(self, requests: list[dict], context) -> tuple[dict[int, DecodedPhoto], dict[int, PhotoRejected]]:
        photos, errors = {}, {}
        for index, request in enumerate(requests):
            try:
                headers = _lower_keys(context.get_all_request_header(index))
                self._authorize(headers)
                photos[index] = decode_photo(_photo_bytes(request, headers), self.limits, self.segmenter.longest_side)
                self.metrics.photo(photos[index].pixels, photos[index].width, photos[index].height)
            except PhotoRejected as error:
                errors[index] = error
        return photos, errors

    def _authorize(self, headers: dict[str, str]) -> None:
        if self.settings.api_key is None:
            return
        sent = headers.get("x-wms-authorization") or headers.get("authorization", "")  # the front door moves it aside
        scheme, _, token = str(sent).partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.settings.api_key.encode()):
            raise PhotoRejected("unauthorized", "missing or wrong API token: send 'Authorization: Bearer <token>'", 401)

    def _run_model(self, batch: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        logits = self.session.run(None, {self.session.get_inputs()[0].name: batch})[0]
        self.metrics.model(time.perf_counter() - started)
        return logits

    def inference(self, photos: dict[int, DecodedPhoto]) -> dict[int, Look]:
        """What the model made of each photo, in model pixels: a look at the whole batch, then at each window found."""
        indices = list(photos)
        looks = self.segmenter.looks_batch(
            [photos[i].pixels for i in indices], sizes=[(photos[i].height, photos[i].width) for i in indices]
        )
        return dict(zip(indices, looks, strict=True))

    def postprocess(self, photos: dict[int, DecodedPhoto], looks: dict[int, Look]) -> dict[int, dict]:
        """Each answer at its photo's own size, one photo at a time: a burst of huge photos holds one full-size mask."""
        responses = {}
        for index, look in looks.items():
            mask, confidence = self.segmenter.answer(look)
            fraction = np.count_nonzero(mask) / mask.size
            self.metrics.answer(fraction, confidence)
            responses[index] = {
                "mask_png_base64": base64.b64encode(mask_to_png(mask)).decode("ascii"),
                "polygon": window_polygon(mask),
                "bbox": bounding_box(mask),
                "width": photos[index].width,
                "height": photos[index].height,
                "window_fraction": round(fraction, 6),
                "confidence": round(confidence, 4),
                **self._model_fields(),
            }
            del mask  # before the next photo's is made
        return responses

    def _model_fields(self) -> dict[str, str]:
        fields = {"model": self.model_name, "model_version": self.model_version, "trained_on": self.trained_on}
        warning = notice(self.trained_on)
        return fields | ({"notice": warning} if warning else {})


def _lower_keys(headers: dict) -> dict:
    return {str(key).lower(): value for key, value in headers.items()}


def _photo_bytes(request: dict, headers: dict) -> bytes:
    """The one photo of a request: the raw body, or the single file of a multipart form."""
    parts = {name: value for name, value in request.items() if value is not None}
    if _request_type(headers) == "application/x-www-form-urlencoded":
        raise PhotoRejected("wrong_content_type", _WRONG_TYPE.format("application/x-www-form-urlencoded"), 415)
    if len(parts) > 1:
        raise PhotoRejected(
            "several_files", f"the request holds {len(parts)} parts ({', '.join(sorted(parts))}): send one photo per request"
        )
    if not parts:
        raise PhotoRejected("empty_body", "the request has no body: send the photo's bytes (JPEG, PNG, WebP or BMP)")
    [(name, value)] = parts.items()
    content_type = _content_type(headers, name)
    if not isinstance(value, (bytes, bytearray)) or (content_type and not _is_photo_type(content_type, headers)):
        raise PhotoRejected("wrong_content_type", _WRONG_TYPE.format(content_type or type(value).__name__), 415)
    return bytes(value)


_WRONG_TYPE = (
    "the body was sent as {}: send the photo's bytes with Content-Type image/jpeg, image/png, image/webp, image/bmp "
    "or application/octet-stream, or as the one file of a multipart/form-data request"
)


def _media_type(value) -> str:
    return str(value or "").split(";")[0].strip().lower()


def _request_type(headers: dict) -> str:
    return _media_type(headers.get("content-type"))


def _content_type(headers: dict, part: str) -> str:
    """The part's own content type (a multipart file), else the request's."""
    own = headers.get(part.lower())
    if isinstance(own, dict) and own.get("content-type"):
        return _media_type(own["content-type"])
    return _request_type(headers)


def _is_photo_type(content_type: str, headers: dict) -> bool:
    multipart = _request_type(headers) == "multipart/form-data"
    return content_type in PHOTO_CONTENT_TYPES or content_type.startswith("image/") or multipart


_service = WindowSegmenter()


def handle(data, context):
    if data is None:
        _service.initialize(context)
        return None
    return _service.handle(data, context)
