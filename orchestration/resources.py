"""Dagster resources: where the driftmart home is, and which monitoring spec is in force."""

import dagster as dg

from ml.spec import ModelSpec, load_spec
from warehouse.home import Home


class DriftmartResource(dg.ConfigurableResource):
    """The installation the assets work on: its home folder and its monitoring spec file."""

    home_dir: str
    spec_path: str = ""  # empty: the synthetic demo model's spec shipped with driftmart

    @property
    def home(self) -> Home:
        return Home.resolve(self.home_dir).ensure()

    def spec(self) -> ModelSpec:
        return load_spec(self.spec_path or None)


# DuckDB allows one writer per file: every asset that writes the warehouse runs in this pool, which
# the driftmart Dagster instance limits to one slot (orchestration/instance.py).
WAREHOUSE_WRITER_POOL = "driftmart_warehouse_writer"
