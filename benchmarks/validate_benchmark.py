"""Wall time and peak memory of validating a data folder (every pair decoded and checked).

python benchmarks/validate_benchmark.py ../shared/data/water-meters --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from wms.data.validation import validate_folder


def peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    report = validate_folder(args.folder, workers=args.workers)
    seconds = time.perf_counter() - started
    files = sum(1 for sub in ("images", "masks") for _ in (args.folder / sub).iterdir())
    print(
        json.dumps(
            {
                "folder": str(args.folder),
                "cores": os.cpu_count(),
                "workers": args.workers,
                "valid": len(report.valid),
                "rejected": len(report.rejected),
                "wall_seconds": round(seconds, 1),
                "pairs_per_second": round(len(report.valid) / seconds, 1),
                "files": files,
                "peak_rss_mib_main": round(peak_rss_mib(resource.RUSAGE_SELF), 1),
                "peak_rss_mib_largest_worker": round(peak_rss_mib(resource.RUSAGE_CHILDREN), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
