"""Tests of accel.program: the contract suite on compiled Programs run by the naive
functional interpreter (tests/functional.py), persistence, and validation."""

import json

import numpy as np
import pytest

from accel.compiler import build_memory, compile_problem
from accel.config import HardwareConfig
from accel.contract import make_contract
from accel.errors import InputFileError, ProgramError
from accel.problem import make_problem
from accel.program import FLAG_FIRST, FLAG_FRESH, Program
from accel.reference import reference
from sim.engine import simulate
from functional import FunctionalError, run_functional
from contract_suite import ContractSuite, assert_ints_equal, random_problem


class TestFunctionalLevel(ContractSuite):
    """run = compile + functional interpreter (no time: cycles None)."""

    def run(self, problem, config, order, d_mode=None, row_blocks=None, **kw):
        prog = compile_problem(problem, config, order, d_mode=d_mode, row_blocks=row_blocks)
        out = run_functional(prog, build_memory(problem, prog))
        return out[prog.tensor_id("Y")], None


# ------------------------------------------------------------ fixtures

def _program(seed=1, order="a(xw)", **cfg):
    problem = random_problem(seed, 14, 11, 9, 7, dens_a=0.35)
    base = dict(rows=3, cols=2, lmem_depth=6, out_bank_depth=8)
    base.update(cfg)
    return problem, compile_problem(problem, HardwareConfig(**base), order)


def _corrupt(prog: Program, name: str, fn) -> Program:
    arrays = {k: v.copy() for k, v in prog.arrays.items()}
    fn(arrays[name]) if name in arrays else None
    return Program(prog.config, prog.tensors, arrays, dict(prog.meta))


# ------------------------------------------------------------ the functional model is strict

def test_functional_interpreter_matches_the_simulator_memory_image():
    problem, prog = _program(order="(ax)w")
    mem = build_memory(problem, prog)
    func = run_functional(prog, mem)
    sim = simulate(prog, mem).memory
    for t, f, s in zip(prog.tensors, func, sim):
        assert_ints_equal(f, s, f"tensor {t['name']}")   # intermediates too, not only Y


def test_functional_interpreter_rejects_a_missing_first():
    problem, prog = _program()
    first = np.flatnonzero(prog.arrays["e_flags"] & FLAG_FIRST)[0]
    bad = _corrupt(prog, "e_flags", lambda f: f.__setitem__(first, f[first] & ~FLAG_FIRST))
    with pytest.raises(FunctionalError, match="no FIRST"):
        run_functional(bad, build_memory(problem, bad))


def test_functional_interpreter_rejects_merging_into_an_unwritten_slot():
    problem, prog = _program()
    fresh = np.flatnonzero(prog.arrays["e_flags"] & FLAG_FRESH)[0]
    bad = _corrupt(prog, "e_flags", lambda f: f.__setitem__(fresh, f[fresh] & ~FLAG_FRESH))
    with pytest.raises(FunctionalError, match="never wrote"):
        run_functional(bad, build_memory(problem, bad))


def test_functional_interpreter_rejects_an_unloaded_address():
    problem, prog = _program(lmem_depth=64)
    bad = _corrupt(prog, "e_addr", lambda a: a.__setitem__(0, 63))   # beyond every tile
    with pytest.raises(FunctionalError, match="was not loaded"):
        run_functional(bad, build_memory(problem, bad))


def test_functional_interpreter_rejects_a_row_written_twice():
    problem, prog = _program()

    def dup(rows):
        active = np.argwhere(rows >= 0)
        (s0, l0), (s1, l1) = active[0], active[1]
        rows[s1, l1] = rows[s0, l0]
    bad = _corrupt(prog, "wb_row", dup)
    with pytest.raises(FunctionalError, match="written 2 times|written 0 times"):
        run_functional(bad, build_memory(problem, bad))


# ------------------------------------------------------------ persistence

def test_save_load_round_trip(tmp_path):
    problem, prog = _program(order="(ax)w")
    prog.save(tmp_path / "p")
    back = Program.load(tmp_path / "p")
    assert back.config == prog.config and back.config.id == prog.config.id
    assert list(back.tensors) == json.loads(json.dumps(list(prog.tensors)))
    assert json.dumps(back.meta, sort_keys=True) == json.dumps(prog.meta, sort_keys=True)
    assert sorted(back.arrays) == sorted(prog.arrays)
    for k, v in prog.arrays.items():
        assert back.arrays[k].dtype == v.dtype, k
        np.testing.assert_array_equal(back.arrays[k], v, err_msg=k)
    mem = build_memory(problem, prog)
    r0, r1 = simulate(prog, mem), simulate(back, mem)
    assert r0.cycles == r1.cycles
    assert_ints_equal(r1.memory[0], reference(problem, "(ax)w"), "loaded program")


def test_load_errors(tmp_path):
    with pytest.raises(InputFileError, match="cannot read program"):
        Program.load(tmp_path / "nothing")
    _, prog = _program()
    prog.save(tmp_path / "p")
    doc = json.loads((tmp_path / "p" / "program.json").read_text())
    doc["format"] = "axw-program-0"
    (tmp_path / "p" / "program.json").write_text(json.dumps(doc))
    with pytest.raises(InputFileError, match="unknown format 'axw-program-0'"):
        Program.load(tmp_path / "p")


def test_load_validates(tmp_path):
    _, prog = _program()
    bad = _corrupt(prog, "e_slot", lambda s: s.__setitem__(0, prog.config.out_bank_depth))
    bad.save(tmp_path / "p")
    with pytest.raises(ProgramError, match="slot is outside the output bank depth"):
        Program.load(tmp_path / "p")


# ------------------------------------------------------------ validation

@pytest.mark.parametrize("name,fn,match", [
    ("e_addr", lambda a: a.__setitem__(0, 6), "element address is outside the local memory depth 6"),
    ("e_addr", lambda a: a.__setitem__(-1, -1), "element address is outside"),
    ("ld_addr", lambda a: a.__setitem__(0, 6), "load address is outside the local memory depth 6"),
    ("e_slot", lambda a: a.__setitem__(0, 8), "element slot is outside the output bank depth 8"),
    ("wb_slot", lambda a: a.__setitem__((0, 0), 8), "writeback slot is out of range"),
    ("wb_slot", lambda a: a.__setitem__((0, 0), -3), "writeback slot is out of range"),
    ("row_stream_ptr", lambda a: a.__setitem__((0, 1), a[0, 2] + 1), "not monotone"),
    ("row_stream_ptr", lambda a: a.__setitem__((-1, -1), a[-1, -1] - 1), "does not cover"),
    ("load_ptr", lambda a: a.__setitem__((0, 1), a[0, -1] + 1), "load_ptr"),
    ("t_stream", lambda a: a.__setitem__(0, 10 ** 6), "t_stream out of range"),
    ("t_bank", lambda a: a.__setitem__(0, 2), "t_bank not 0/1"),
    ("t_ncols", lambda a: a.__setitem__(0, 3), "t_ncols outside 1..2"),
    ("t_phase", lambda a: a.__setitem__(0, 1), "not in phase order"),
    ("t_prev_same_bank", lambda a: a.__setitem__(0, 0), "must point to an earlier tile"),
    ("ld_drow", lambda a: a.__setitem__(0, 10 ** 6), "load reads outside D"),
    ("e_src", lambda a: a.__setitem__(0, 10 ** 6), "element reads outside S"),
    ("ph_s", lambda a: a.__setitem__(0, 99), "ph_s names a tensor outside"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_validate_catches_corruption(name, fn, match):
    _, prog = _program()
    prog.validate()
    with pytest.raises(ProgramError, match=match):
        _corrupt(prog, name, fn).validate()


def test_validate_catches_wrong_dtype_and_missing_array():
    _, prog = _program()
    arrays = dict(prog.arrays)
    arrays["e_addr"] = arrays["e_addr"].astype(np.int64)
    with pytest.raises(ProgramError, match="'e_addr' has dtype int64, want <class 'numpy.int32'>|"
                                           "'e_addr' has dtype int64"):
        Program(prog.config, prog.tensors, arrays).validate()
    del arrays["e_addr"]
    with pytest.raises(ProgramError, match="program array 'e_addr' is missing"):
        Program(prog.config, prog.tensors, arrays).validate()


def test_validate_catches_a_writeback_row_outside_the_output():
    # Regression: wb_row was not bounded, and simulate() wrote the row past the end of Y
    # into the next tensor of the memory image (W0).
    problem = make_problem(np.array([[1, 2], [3, 4]]), np.array([[1], [2]]), np.array([[1]]),
                           make_contract("exact"), "wb-row", x_sparse=False)
    prog = compile_problem(problem, HardwareConfig(rows=1, cols=1), "a(xw)")
    bad = _corrupt(prog, "wb_row", lambda r: r.__setitem__((-1, 0), 2))   # Y has rows 0, 1
    with pytest.raises(ProgramError, match="writeback row is outside the output's 2 rows"):
        bad.validate()


def test_validate_catches_a_merged_row_outside_the_output():
    a = np.zeros((3, 40), np.int64)
    a[1] = 1
    a[[0, 2], 0] = 1
    problem = make_problem(a, np.ones((40, 1)), np.ones((1, 1)), make_contract("exact"),
                           "wb-mrow", x_sparse=False)
    prog = compile_problem(problem, HardwareConfig(rows=2, cols=1), "(ax)w")
    steps = np.flatnonzero(prog.arrays["wb_merge"].any(axis=1))
    assert steps.size, "no split row: weak test"
    bad = _corrupt(prog, "wb_mrow", lambda r: r.__setitem__(steps[0], 3))
    with pytest.raises(ProgramError, match="merged writeback row is outside the output's 3 rows"):
        bad.validate()


def test_validate_catches_a_step_with_more_vectors_than_the_hardware_writes():
    problem = random_problem(3, 20, 16, 6, 3, dens_a=0.3)
    prog = compile_problem(problem, HardwareConfig(rows=4, cols=2, wb_vectors=2), "a(xw)")
    prog.validate()
    used = (prog.arrays["wb_slot"] != -1).sum(axis=1)
    assert used.max() == 2, "no step is full: weak test"
    # the same steps on hardware with one vector per step
    narrow = Program(prog.config.with_(wb_vectors=1), prog.tensors, prog.arrays, prog.meta)
    with pytest.raises(ProgramError, match="writes 2 vectors; the hardware writes at most 1"):
        narrow.validate()
