"""Where the project's own files are: the serving files (package data of `serving`, in a checkout or an installed
wheel alike) and, in a checkout, its root with the chart and the monitoring configuration."""

from pathlib import Path

import serving

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout's root (in an installed wheel: site-packages, which holds no chart or monitoring folder)."""
SERVING_DIR = Path(serving.__file__).resolve().parent
"""The serving image's files, the handler, the front door's template, the page and the API's OpenAPI document."""
MONITORING_DIR = PROJECT_ROOT / "monitoring"
