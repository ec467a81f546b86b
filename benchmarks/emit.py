"""How the benchmark scripts hand over a result: printed, and written as JSON where asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path


def emit(summary: dict, output: Path | None) -> None:
    """Print the summary as JSON, dated; write it to `output` too (under benchmarks/results, say) when given. After a
    new result, `python benchmarks/pages.py` writes docs/benchmarks.md again."""
    summary = {"measured": datetime.now(UTC).isoformat(timespec="seconds"), **summary}
    text = json.dumps(summary, indent=2)
    print(text)
    if output:
        output.write_text(text + "\n")
