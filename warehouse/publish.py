"""Publishing: after a successful build, readers get a consistent copy of the warehouse.

The copy is written beside its destination and renamed over it, so a reader opens either the old
complete file or the new complete file, never a half-written one; an open reader keeps its old
inode and is never blocked (DESIGN.md §4).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from warehouse.home import Home


def publish(home: Home) -> Path:
    """Copy the warehouse to `<home>/published/`. Call while holding the writer lock, connections closed."""
    home.published_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=home.published_dir, prefix=".driftmart-", suffix=".duckdb")
    os.close(handle)
    try:
        shutil.copyfile(home.warehouse, temporary)
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, home.published)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return home.published
