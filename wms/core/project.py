"""Where the project's own files are: the checkout's root and the folders of it that the library reads."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVING_DIR = PROJECT_ROOT / "serving"
"""The serving image's files, the handler, the front door's template, the page and the API's OpenAPI document."""
MONITORING_DIR = PROJECT_ROOT / "monitoring"
