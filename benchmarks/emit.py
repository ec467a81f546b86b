"""How the benchmark scripts hand over a result: printed, and written as JSON where asked."""

from __future__ import annotations

import json
from pathlib import Path


def emit(summary: dict, output: Path | None) -> None:
    """Print the summary as JSON; write it to `output` too (under benchmarks/results, say) when given."""
    text = json.dumps(summary, indent=2)
    print(text)
    if output:
        output.write_text(text + "\n")
