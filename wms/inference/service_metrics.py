"""The serving handler's own Prometheus metrics: latency histograms, outcomes, batch sizes and input statistics.

Why not TorchServe's custom metrics API: in prometheus mode its histograms take the client library's default
buckets (5 ms to 10 s in seconds, while its values are milliseconds) and its latency metrics are counters, so no
percentile can be computed from them. These metrics use prometheus-client instead.

TorchServe runs each worker in its own process. With PROMETHEUS_MULTIPROC_DIR set (the local server and the
serving image set it, to a folder emptied at start), every worker writes its samples there and the first worker to
bind the metrics port serves all of them, merged; when it dies, its replacement binds the port again.
"""

from __future__ import annotations

import logging
import os

import numpy as np

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
"""Seconds: fine where the CPU answers (tens to hundreds of milliseconds), coarse in the tail."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
MEGAPIXEL_BUCKETS = (0.1, 0.3, 0.5, 1, 2, 4, 8, 12, 16, 24, 50)
BRIGHTNESS_BUCKETS = tuple(range(16, 256, 16))
"""Mean luma of the photo, 0 (black) to 255 (white), in 16 steps."""
FRACTION_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.5)
"""Share of the photo's pixels in the predicted window (about 0.023 on the training photos)."""
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)

STEPS = ("preprocess", "inference", "postprocess")
SERVER_ERROR_OUTCOMES = ("internal_error",)
"""Outcomes that are the server's fault (answered 5xx); the others are 'ok' or the client's fault (4xx)."""


class HandlerMetrics:
    """Metric families, labelled by model and version; `serve(port)` exposes them (merged across workers)."""

    def __init__(self, model: str, version: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        # One process: a registry of this instance's own. Several workers: the samples go to files instead.
        self.registry = None if _multiprocess() else CollectorRegistry()
        labels = {"model": model, "model_version": version}
        names = list(labels)

        def histogram(name: str, text: str, buckets, extra: tuple[str, ...] = ()):
            return Histogram(name, text, [*names, *extra], buckets=buckets, registry=self.registry)

        self._request = histogram("wms_request_seconds", "Whole request in the handler, per photo", LATENCY_BUCKETS)
        # `step`, not `stage`: Prometheus adds the release stage (staging, prod) as `stage` to every series.
        self._step = histogram("wms_step_seconds", "Handler step per batch", LATENCY_BUCKETS, ("step",))
        self._model = histogram("wms_model_seconds", "Model runs (ONNX Runtime), per call of a batch", LATENCY_BUCKETS)
        self._batch = histogram("wms_batch_size", "Requests per batch that TorchServe handed over", BATCH_BUCKETS)
        self._megapixels = histogram("wms_input_megapixels", "Photo size", MEGAPIXEL_BUCKETS)
        self._brightness = histogram("wms_input_brightness", "Mean luma of the photo (0-255)", BRIGHTNESS_BUCKETS)
        self._fraction = histogram("wms_window_fraction", "Share of the photo in the predicted window", FRACTION_BUCKETS)
        self._confidence = histogram("wms_confidence", "Mean window probability of the answer", CONFIDENCE_BUCKETS)
        self._requests = Counter(
            "wms_requests", "Requests by outcome ('ok' or the error's cause)", [*names, "outcome"], registry=self.registry
        )
        self._labels = labels
        # Series at zero from the start: Prometheus's increase() and rate() ignore what a series held when first
        # scraped, so a version's first requests (a canary's) would otherwise go uncounted.
        for outcome in ("ok", *SERVER_ERROR_OUTCOMES):
            self._requests.labels(**labels, outcome=outcome)
        self._request.labels(**labels)

    def batch(self, size: int) -> None:
        self._batch.labels(**self._labels).observe(size)

    def model(self, seconds: float) -> None:
        self._model.labels(**self._labels).observe(seconds)

    def step(self, step: str, seconds: float) -> None:
        self._step.labels(**self._labels, step=step).observe(seconds)

    def request(self, seconds: float, outcome: str) -> None:
        self._request.labels(**self._labels).observe(seconds)
        self._requests.labels(**self._labels, outcome=outcome).inc()

    def photo(self, pixels: np.ndarray, width: int, height: int) -> None:
        self._megapixels.labels(**self._labels).observe(width * height / 1e6)
        self._brightness.labels(**self._labels).observe(float(luma(pixels).mean()))

    def answer(self, window_fraction: float, confidence: float) -> None:
        self._fraction.labels(**self._labels).observe(window_fraction)
        self._confidence.labels(**self._labels).observe(confidence)

    def serve(self, port: int, address: str = "127.0.0.1") -> bool:
        """Expose the metrics on http://address:port/metrics; False when another worker already does."""
        from prometheus_client import CollectorRegistry, start_http_server

        registry = self.registry
        if registry is None:
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        try:
            start_http_server(port, addr=address, registry=registry)
        except OSError as error:
            logger.info("handler metrics port %s is taken (%s): another worker serves the metrics", port, error)
            return False
        logger.info("handler metrics on http://%s:%s/metrics", address, port)
        return True


def luma(pixels: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of RGB pixels, computed on a subsample (a statistic, not an image)."""
    step = max(1, int(np.sqrt(pixels.shape[0] * pixels.shape[1] / 65536)))
    sample = pixels[::step, ::step].astype(np.float32)
    return sample @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
