"""Where one driftmart installation keeps its state: the warehouse, landing zone, models, reports.

Every command takes `--home DIR` (or env `DRIFTMART_HOME`); the default is `./warehouse/data`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("warehouse") / "data"
WAREHOUSE_FILE = "driftmart.duckdb"  # fixed: dbt-duckdb bakes the file's stem into the manifest


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, root: str | Path | None = None) -> Home:
        """The home named explicitly, else `$DRIFTMART_HOME`, else `./warehouse/data`."""
        chosen = root or os.environ.get("DRIFTMART_HOME") or DEFAULT_HOME
        return cls(Path(chosen).expanduser().resolve())

    def ensure(self) -> Home:
        for directory in (self.root, self.landing, self.models, self.reports, self.published_dir):
            directory.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def warehouse(self) -> Path:
        return self.root / WAREHOUSE_FILE

    @property
    def writer_lock(self) -> Path:
        return self.root / ".warehouse.lock"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def published_dir(self) -> Path:
        return self.root / "published"

    @property
    def published(self) -> Path:
        return self.published_dir / WAREHOUSE_FILE

    @property
    def dbt_target(self) -> Path:
        return self.root / "dbt" / "target"

    @property
    def dbt_logs(self) -> Path:
        return self.root / "dbt" / "logs"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"
