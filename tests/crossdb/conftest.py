"""The DuckDB reference build of the parity case, shared by the PostgreSQL and Spark parity tests."""

import pytest

from tests.crossdb.parity import build_parity_case, write_parity_case
from warehouse.home import Home


@pytest.fixture(scope="session")
def parity_files(tmp_path_factory):
    return write_parity_case(tmp_path_factory.mktemp("parity-case"))


@pytest.fixture(scope="session")
def duckdb_parity_home(tmp_path_factory, parity_files) -> Home:
    return build_parity_case(parity_files, Home.resolve(tmp_path_factory.mktemp("parity-duckdb")), "duckdb")
