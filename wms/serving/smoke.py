"""A release's smoke test: does the service answer /ping, and does a meter photo come back with a mask?

The same probe checks a staging release before production gets it, on this machine and on EKS.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from wms.data.synthetic import sample_pair

PING_TIMEOUT_SECONDS = 10.0
PREDICT_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class SmokeResult:
    problems: list[str]
    served_version: str | None = None

    @property
    def passed(self) -> bool:
        return not self.problems


def smoke_test(
    base_url: str, model_name: str, expected_version: str, token: str | None = None, pinned: bool = False
) -> SmokeResult:
    """GET /ping, then POST one synthetic meter photo to /predictions/<model>; every failure is named.

    `pinned` posts to /predictions/<model>/<version>: a version registered beside the one serving, before it is made
    the default, is tested without taking any client's request.
    """
    problems = _ping_problems(base_url)
    if problems:
        return SmokeResult(problems)
    url = f"{base_url}/predictions/{model_name}" + (f"/{expected_version}" if pinned else "")
    try:
        answer = _post_photo(url, sample_photo(), token)
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as error:
        return SmokeResult([f"a meter photo sent to {url} got no answer: {_reason(error)}"])
    served = str(answer.get("model_version"))
    if "mask_png_base64" not in answer:
        problems.append(f"the answer holds no mask: {sorted(answer)}")
    if served != str(expected_version):
        problems.append(f"version {served} answered, {expected_version} was released")
    return SmokeResult(problems, served)


def sample_photo() -> bytes:
    """A synthetic meter photo (seeded): JPEG bytes."""
    photo, _ = sample_pair(seed=0)
    buffer = io.BytesIO()
    photo.convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _ping_problems(base_url: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"{base_url}/ping", timeout=PING_TIMEOUT_SECONDS) as response:
            status = json.load(response).get("status")
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as error:
        return [f"{base_url}/ping did not answer: {_reason(error)}"]
    return [] if status == "Healthy" else [f"{base_url}/ping answered status {status!r}, not 'Healthy'"]


def _post_photo(url: str, body: bytes, token: str | None) -> dict:
    headers = {"Content-Type": "application/octet-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=PREDICT_TIMEOUT_SECONDS) as response:
        return json.load(response)


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.read().decode(errors='replace')[:300]}"
    return str(getattr(error, "reason", error))
