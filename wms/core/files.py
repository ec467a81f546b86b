"""Files written so that no reader, and no rerun after a kill, ever sees one half-written."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_atomically(target: Path) -> Iterator[Path]:
    """Yield a hidden partial path beside `target` to write; when the block ends well it becomes `target` in one
    rename. A kill in the middle leaves only the partial file, which the next write overwrites."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)


def copy_atomically(source: Path, target: Path) -> None:
    with written_atomically(target) as partial:
        shutil.copyfile(source, partial)
