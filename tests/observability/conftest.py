"""Helpers of the observability tests: scraping the exporter, the Prometheus tools, copies of homes."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import IN_CI, REPO
from warehouse.exporter import exporter_registry
from warehouse.home import Home

DEPLOY = REPO / "deploy"

Samples = dict[str, dict[frozenset[tuple[str, str]], float]]


def require_tool(name: str) -> str:
    """The path of a Prometheus tool; in CI (CI=true) its absence fails the test, elsewhere it skips."""
    path = shutil.which(name)
    if path:
        return path
    message = f"`{name}` is not installed (Debian package `prometheus`; .ci/run installs it)"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true: this test must run in CI")
    pytest.skip(message)


def parse_samples(text: str) -> Samples:
    """Exposition text → {sample name: {labels: value}}."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def scrape_text(home: Home, clock: Callable[[], float] = time.time) -> str:
    return generate_latest(exporter_registry(home, clock)).decode()


def scrape(home: Home, clock: Callable[[], float] = time.time) -> Samples:
    return parse_samples(scrape_text(home, clock))


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def copy_home(source: Home, destination: Path) -> Home:
    """A writable copy of a (read-only, shared) home."""
    shutil.copytree(source.root, destination)
    return Home.resolve(destination)
