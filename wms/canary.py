"""A canary's analysis: how a candidate version compares with the version in service, from what Prometheus saw.

Plain functions and data, no Dagster: the policy (steps, window, tolerances, minimum requests), the PromQL that
reads one version's requests, server errors and p95 latency over a window from the handler's own metrics (labelled
by version, so two versions inside one TorchServe are told apart), and the verdict at one step.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from wms.service_metrics import SERVER_ERROR_OUTCOMES


class CanaryError(RuntimeError):
    """The analysis could not be made (Prometheus did not answer, or answered nonsense); nothing was changed."""


@dataclass(frozen=True)
class CanaryPolicy:
    steps: tuple[int, ...] = (10, 50, 100)
    """The candidate's share of requests at each step, in percent, rising; the last is 100."""
    window_s: int = 120
    """How far back each step looks, in seconds (Prometheus range), once its share has been set."""
    min_requests: int = 30
    """The fewest requests each version must have answered in the window for a verdict."""
    max_error_ratio_increase: float = 0.01
    """How much higher the candidate's server-error ratio may be than the version in service's (absolute)."""
    max_p95_ratio: float = 1.5
    """How many times the version in service's p95 latency the candidate's may reach."""
    p95_slack_s: float = 0.05
    """Latency either way within this is noise whatever the ratio (a histogram bucket's width, near the fast end)."""

    def __post_init__(self) -> None:
        steps = list(self.steps)
        if not steps or steps[-1] != 100 or steps != sorted(set(steps)) or not all(0 < step <= 100 for step in steps):
            raise ValueError(f"canary steps must rise from above 0 to 100 percent, each once: got {self.steps}")
        if self.window_s < 1 or self.min_requests < 1 or self.max_p95_ratio < 1 or self.max_error_ratio_increase < 0:
            raise ValueError("a canary's window and minimum requests are positive, its tolerances at least 1 and 0")


@dataclass(frozen=True)
class VersionFigures:
    version: str
    requests: float
    server_errors: float
    p95_s: float | None
    """None when no request was timed in the window."""

    @property
    def error_ratio(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        p95 = f"{self.p95_s * 1000:.0f} ms" if self.p95_s is not None else "n/a"
        return f"version {self.version}: {self.requests:.0f} requests, error ratio {self.error_ratio:.3f}, p95 {p95}"


@dataclass(frozen=True)
class Verdict:
    outcome: str
    """'pass' (go on), 'fail' (roll back) or 'wait' (too few requests yet)."""
    reason: str


def judge(candidate: VersionFigures, in_service: VersionFigures, policy: CanaryPolicy) -> Verdict:
    """The verdict at one step: too few requests to tell, worse than the tolerances allow, or good enough."""
    figures = f"{candidate.describe()}; {in_service.describe()}"
    scarce = [figure for figure in (candidate, in_service) if figure.requests < policy.min_requests]
    if scarce:
        return Verdict("wait", f"fewer than {policy.min_requests} requests in the window: {figures}")
    problems = []
    if candidate.error_ratio > in_service.error_ratio + policy.max_error_ratio_increase:
        problems.append(f"error ratio more than {policy.max_error_ratio_increase} above the version in service's")
    if candidate.p95_s is not None and in_service.p95_s is not None:
        allowed = max(in_service.p95_s * policy.max_p95_ratio, in_service.p95_s + policy.p95_slack_s)
        if candidate.p95_s > allowed:
            problems.append(f"p95 above {allowed * 1000:.0f} ms ({policy.max_p95_ratio} times the version in service's)")
    if problems:
        return Verdict("fail", f"{'; '.join(problems)}: {figures}")
    return Verdict("pass", f"within tolerance: {figures}")


def version_queries(model: str, version: str, window_s: int) -> dict[str, str]:
    """PromQL for one version's requests, server errors and p95 latency (seconds) over the window."""
    selector = f'model="{model}", model_version="{version}"'
    window = f"[{window_s}s]"
    causes = "|".join(SERVER_ERROR_OUTCOMES)
    return {
        "requests": f"sum(increase(wms_requests_total{{{selector}}}{window}))",
        "server_errors": f'sum(increase(wms_requests_total{{{selector}, outcome=~"{causes}"}}{window}))',
        "p95_s": f"histogram_quantile(0.95, sum by (le) (rate(wms_request_seconds_bucket{{{selector}}}{window})))",
    }


def read_figures(prometheus_url: str, model: str, version: str, window_s: int) -> VersionFigures:
    """One version's figures as Prometheus has them now."""
    values = {name: _instant(prometheus_url, query) for name, query in version_queries(model, version, window_s).items()}
    return VersionFigures(version, values["requests"] or 0.0, values["server_errors"] or 0.0, values["p95_s"])


def _instant(prometheus_url: str, query: str) -> float | None:
    """The single value of an instant query; None when it has no series or is not a number (no samples yet)."""
    url = f"{prometheus_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise CanaryError(f"Prometheus at {prometheus_url} did not answer {query!r}: {error}") from error
    if answer.get("status") != "success":
        raise CanaryError(f"Prometheus refused {query!r}: {answer.get('error', answer)}")
    result = answer["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value
