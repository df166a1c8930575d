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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "rtl_slow: further cases of the contract suite on the Amaranth simulation "
        "(about 1k cycles/s); the default run keeps one case of each test, "
        "`pytest -m rtl_slow` runs the rest")


#: heavy at the Amaranth level (minutes) and covered there by a lighter test
#: (test_int8_extremes_saturate exercises the int8 requantization paths)
_RTL_SLOW_ONLY = ("::test_int8_orders_give_order_specific_answers",)


def pytest_collection_modifyitems(config, items):
    """At the Amaranth level keep the first parametrization of each contract-suite test in
    the default run (every capability once), in each class (lag 0, the request lag, the
    credit lag); mark the others rtl_slow and leave them out unless ``-m`` asks for
    them."""
    seen = set()
    keep = []
    for item in items:
        if "test_hdl_amaranth.py" in item.nodeid and "::TestAmaranthLevel" in item.nodeid:
            func = item.nodeid.split("[")[0]
            if func in seen or func.endswith(_RTL_SLOW_ONLY):
                item.add_marker("rtl_slow")
            seen.add(func)
        keep.append(item)
    if not config.getoption("-m"):
        deselected = [i for i in keep if i.get_closest_marker("rtl_slow")]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [i for i in keep if not i.get_closest_marker("rtl_slow")]
