"""Shared pytest setup: hypothesis profiles and the real-data fixtures.

Profiles: ``ci`` (derandomized, modest example counts: the same examples on every run),
``dev`` (random, quick) and ``thorough`` (random, many examples: for hunting bugs by
hand).  ``HYPOTHESIS_PROFILE`` selects one; otherwise ``CI=true`` selects ``ci`` and
anything else ``dev``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from accel import loaders


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.differing_executors])
settings.register_profile("ci", derandomize=True, database=None, max_examples=60, **_COMMON)
settings.register_profile("dev", max_examples=40, **_COMMON)
settings.register_profile("thorough", max_examples=1000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev"))


def _missing(what: str):
    """Real data absent: an error in CI (the data ships with the project), a skip elsewhere."""
    msg = (f"{what} not found (data folder {loaders.data_dir()}; set "
           f"{loaders.DATA_ENV} to point elsewhere)")
    if in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real-data folder (accel.loaders.data_dir()); fails in CI, skips elsewhere if absent."""
    d = loaders.data_dir()
    if not d.is_dir():
        _missing("data folder")
    return d


@pytest.fixture(scope="session")
def need_data(data_dir):
    """``need_data(relpath) -> Path``: one file of the data folder, with the same policy."""
    def need(relpath: str) -> Path:
        p = data_dir / relpath
        if not p.is_file():
            _missing(f"data file {relpath}")
        return p
    return need
