"""Imported by every Python process that `tests/killpoints.py dvc-push` starts: in `dvc push` alone, hold in the
middle of the 40th upload to the remote (its temporary file written, not yet renamed) until the test's SIGKILL."""

import json
import os
import sys
import time
from pathlib import Path

HELD_AT = 40

if os.environ.get("WMS_KILLPOINT") == "dvc-push" and sys.orig_argv[1:4] == ["-m", "dvc", "push"]:
    import dvc_objects.fs.local as local

    real_copyfile = local.copyfile
    uploads = []

    def copyfile(source, destination, *args, **kwargs):
        result = real_copyfile(source, destination, *args, **kwargs)
        uploads.append(destination)
        if len(uploads) == HELD_AT:
            marker = Path(os.environ["WMS_KILLPOINT_DIR"]) / "dvc-push.json"
            detail = {"point": "dvc-push", "pid": os.getpid(), "file": str(destination), "uploaded_before": HELD_AT - 1}
            marker.with_suffix(".partial").write_text(json.dumps(detail))
            marker.with_suffix(".partial").replace(marker)
            while True:
                time.sleep(60)
        return result

    local.copyfile = copyfile
