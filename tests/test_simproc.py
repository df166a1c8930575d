"""Tests of accel.simproc: the forked simulator process returns exactly what sim.simulate
returns in this process, falls back to this process when the child is gone, and carries
the simulator's typed errors; and ``accel run`` (which uses it) stays bit-exact."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import sim
from accel.compiler import build_memory, compile_problem
from accel.config import HardwareConfig
from accel.errors import AxwError
from accel.simproc import SimProcess
from contract_suite import random_problem

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _program(seed=3, stalls=0):
    problem = random_problem(seed, 37, 29, 11, 13, dens_a=0.2, dens_x=0.5, x_sparse=True)
    prog = compile_problem(problem, HardwareConfig(rows=4, cols=4, lmem_depth=16))
    return prog, build_memory(problem, prog)


def _same(a, b):
    assert a.cycles == b.cycles
    assert a.stats == b.stats
    assert len(a.memory) == len(b.memory)
    for x, y in zip(a.memory, b.memory):
        assert x.shape == y.shape and x.dtype == y.dtype
        assert np.array_equal(x, y)


@pytest.fixture
def proc():
    p = SimProcess.start()
    yield p
    p.close()


def test_the_child_returns_what_simulate_returns(proc):
    for seed, stalls in ((3, 0), (4, 150)):
        prog, mem = _program(seed)
        here = sim.simulate(prog, mem, stall_permille=stalls, stall_seed=7)
        there = proc.simulate(prog, mem, stall_permille=stalls, stall_seed=7)
        assert proc.alive
        _same(there, here)


def test_a_dead_child_falls_back_to_this_process(proc):
    prog, mem = _program()
    os.kill(proc._pid, signal.SIGKILL)
    os.waitpid(proc._pid, 0)
    res = proc.simulate(prog, mem)
    assert not proc.alive
    _same(res, sim.simulate(prog, mem))


def test_the_simulators_errors_keep_their_type(proc):
    prog, mem = _program()
    with pytest.raises(AxwError, match="stall_permille"):
        proc.simulate(prog, mem, stall_permille=1000)
    assert proc.alive   # a bad request is not a dead child


def test_accel_run_through_the_console_script(tmp_path):
    # the console entry forks the simulator process for ``run``; two chained layers: two jobs
    out = tmp_path / "run"
    code = ("import sys; from accel.console import main; sys.argv = ['accel', 'run', "
            "'--workload', 'gcn-cora-like-2layer', '--rows', '4', '--cols', '4', "
            f"'--no-report', '--out', {str(out)!r}]; raise SystemExit(main())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["bit_exact"] is True
    from accel.runner import evaluate
    from accel.workloads import get_workload
    here = evaluate(get_workload("gcn-cora-like-2layer"), HardwareConfig(rows=4, cols=4))
    assert stats["cycles"] == here.cycles
    assert np.array_equal(np.load(out / "output.npy"), here.y)


def test_array_bundles_round_trip_every_dtype_and_shape(tmp_path):
    from accel.simproc import _read_bundle, _write_bundle
    arrays = {"i8": np.arange(-5, 6, dtype=np.int8), "i64": np.arange(12).reshape(3, 4),
              "empty": np.zeros((0, 3), np.int32), "b": np.array([True, False, True]),
              "scalar": np.array(7, np.int64), "big": np.int64(2) ** 62 - np.arange(3),
              "strided": np.arange(20, dtype=np.int16)[::3]}
    _write_bundle(tmp_path / "x.bin", arrays)
    back = _read_bundle(tmp_path / "x.bin")
    assert list(back) == list(arrays)
    for k, a in arrays.items():
        assert back[k].dtype == a.dtype and back[k].shape == a.shape
        assert np.array_equal(back[k], a)
        assert back[k].flags.writeable
        assert back[k].ctypes.data % 8 == 0
