"""A canary: a candidate version takes a rising share of the traffic while Prometheus says how it compares with the
version in service.

Plain functions and data, no Dagster: the policy (steps, window, tolerances, minimum requests, how long a step may
wait), the PromQL that reads one version's requests, server errors and p95 latency over a window from the handler's
own metrics (labelled by version, so two versions inside one TorchServe are told apart), the verdict at one step, and
the roll-out that walks the steps through a `TrafficSplit` (the local front door, or the ALB on EKS).
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from wms.inference.service_metrics import SERVER_ERROR_OUTCOMES


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
    interval_s: float = 15.0
    """How often Prometheus is asked again while a step has no verdict."""
    max_step_s: int = 900
    """How long one step may go without a verdict (too few requests, Prometheus silent) before the canary is rolled
    back as stuck; the stuck-canary alert uses the same limit."""

    def __post_init__(self) -> None:
        steps = list(self.steps)
        if not steps or steps[-1] != 100 or steps != sorted(set(steps)) or not all(0 < step <= 100 for step in steps):
            raise ValueError(f"canary steps must rise from above 0 to 100 percent, each once: got {self.steps}")
        if self.window_s < 1 or self.min_requests < 1 or self.max_p95_ratio < 1 or self.max_error_ratio_increase < 0:
            raise ValueError("a canary's window and minimum requests are positive, its tolerances at least 1 and 0")
        if self.interval_s <= 0 or self.max_step_s < self.window_s:
            raise ValueError("a canary asks again after a positive interval, and a step may last at least its window")


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


def version_queries(model: str, version: str, window_s: int, stage: str | None = None) -> dict[str, str]:
    """PromQL for one version's requests, server errors and p95 latency (seconds) over the window, in one stage (the
    `stage` label the scrape adds) or all."""
    selector = f'model="{model}", model_version="{version}"' + (f', stage="{stage}"' if stage else "")
    window = f"[{window_s}s]"
    causes = "|".join(SERVER_ERROR_OUTCOMES)
    return {
        "requests": f"sum(increase(wms_requests_total{{{selector}}}{window}))",
        "server_errors": f'sum(increase(wms_requests_total{{{selector}, outcome=~"{causes}"}}{window}))',
        "p95_s": f"histogram_quantile(0.95, sum by (le) (rate(wms_request_seconds_bucket{{{selector}}}{window})))",
    }


def read_figures(prometheus_url: str, model: str, version: str, window_s: int, stage: str | None = None) -> VersionFigures:
    """One version's figures as Prometheus has them now."""
    queries = version_queries(model, version, window_s, stage)
    values = {name: _instant(prometheus_url, query) for name, query in queries.items()}
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


class TrafficSplit(Protocol):
    """Where the candidate's share of the traffic is set: the local front door, or the ALB's weighted forward action."""

    def set_weight(self, weight: int) -> None: ...


@dataclass(frozen=True)
class Step:
    weight: int
    verdict: Verdict
    candidate: VersionFigures | None
    in_service: VersionFigures | None


@dataclass
class RollOut:
    """What a canary did, step by step; `passed` when every step passed (the caller then promotes, else rolls back)."""

    candidate: str
    in_service: str
    steps: list[Step] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return len(self.steps) > 0 and all(step.verdict.outcome == "pass" for step in self.steps)

    @property
    def last(self) -> Step:
        return self.steps[-1]

    def table(self) -> str:
        """The steps as a short Markdown table (Dagster shows it in place)."""
        rows = [f"| {step.weight} % | {step.verdict.outcome} | {step.verdict.reason.replace('|', '/')} |" for step in self.steps]
        return "\n".join(["| weight | verdict | figures |", "|---|---|---|", *rows])


FigureReader = Callable[[str], VersionFigures]
"""A version's figures over the policy's window, as Prometheus has them now (read_figures, bound to a server)."""


def roll_out(
    split: TrafficSplit,
    read: FigureReader,
    candidate: str,
    in_service: str,
    policy: CanaryPolicy,
    log: Callable[[str], None] = lambda message: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RollOut:
    """Give the candidate each step's share, wait one window, then judge it against the version in service until the
    step passes, fails, or has waited `max_step_s` (stuck: judged a failure). Stops at the first step that does not
    pass; sets nothing back, promotes nothing: the caller does either with what this returns.

    The version in service answers nothing at 100 %, so a step whose version in service has too few requests is
    judged against the last figures it had enough requests for (those of the step before)."""
    report = RollOut(candidate, in_service)
    baseline: VersionFigures | None = None
    for weight in policy.steps:
        split.set_weight(weight)
        log(f"canary: version {candidate} takes {weight} % of the requests; judged after {policy.window_s} s")
        step, baseline = _judge_step(weight, read, candidate, in_service, baseline, policy, sleep, clock)
        report.steps.append(step)
        log(f"canary at {weight} %: {step.verdict.outcome}: {step.verdict.reason}")
        if step.verdict.outcome != "pass":
            break
    return report


def _judge_step(
    weight: int,
    read: FigureReader,
    candidate: str,
    in_service: str,
    baseline: VersionFigures | None,
    policy: CanaryPolicy,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> tuple[Step, VersionFigures | None]:
    started = clock()
    sleep(policy.window_s)  # the window then holds this step's traffic only
    verdict, figures = Verdict("wait", "Prometheus not asked yet"), (None, None)
    while True:
        try:
            figures = (read(candidate), read(in_service))
            if figures[1].requests >= policy.min_requests:
                baseline = figures[1]
            verdict = judge(figures[0], baseline or figures[1], policy)
        except CanaryError as error:
            verdict = Verdict("wait", str(error))
        if verdict.outcome != "wait":
            return Step(weight, verdict, *figures), baseline
        if clock() - started + policy.interval_s > policy.max_step_s:
            stuck = Verdict("fail", f"stuck at {weight} % for {policy.max_step_s} s without a verdict: {verdict.reason}")
            return Step(weight, stuck, *figures), baseline
        sleep(policy.interval_s)
