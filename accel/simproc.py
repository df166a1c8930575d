"""The simulator in a second process, forked before NumPy is imported.

Loading Numba and the simulator's cached kernel costs about 0.7 s of interpreter time,
as much as importing NumPy and SciPy and compiling a large layer; in one process the two
take turns on the GIL.  ``accel run`` therefore forks a *simulator process* as its first
act: while the parent imports the compiler, builds the problem and compiles it, the child
imports :mod:`sim` and loads the kernel on the other core.  For each layer the parent then
hands the child the Program and the memory image through files in a private temporary
folder (``/dev/shm`` where it exists: no disk traffic) and reads back the memory and the
statistics: JSON and raw array bundles (a JSON header of names, dtypes, shapes and
offsets, then the bytes: one read, no archive, no checksum pass), never pickle.  The child runs exactly ``sim.simulate``; its
result is the same object, field for field (tests/test_simproc.py).

The child exits when the parent closes its end of the pipe (or dies).  If the child is
gone, the parent simulates in its own process instead, so a run never depends on it.
This module itself does not import numba: only the child does.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SimProcess", "SimProcessError", "RemoteResult"]


class SimProcessError(RuntimeError):
    """The simulator process is gone or answered out of protocol (not a user error)."""


@dataclass(frozen=True, eq=False)
class RemoteResult:
    """What ``sim.simulate`` returns (``SimResult``), read back from the child."""

    memory: list
    cycles: int
    stats: dict


_ALIGN = 64


def _write_bundle(path: Path, arrays: dict) -> None:
    """``arrays`` (name -> ndarray) as one file: header length (8 bytes), JSON header,
    then each array's bytes at a 64-byte aligned offset."""
    import numpy as np
    items, off = [], 0
    for name, a in arrays.items():
        a = np.asarray(a)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")
        items.append((name, a, off))
        off += -(-a.nbytes // _ALIGN) * _ALIGN
    head = json.dumps([{"name": n, "dtype": a.dtype.str, "shape": list(a.shape), "offset": o}
                       for n, a, o in items]).encode()
    base = -(-(8 + len(head)) // _ALIGN) * _ALIGN
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for _, a, o in items:
            f.seek(base + o)
            f.write(memoryview(a.reshape(-1)).cast("B") if a.size else b"")


def _read_bundle(path: Path) -> dict:
    """The arrays of :func:`_write_bundle`, as writable views of one buffer."""
    import numpy as np
    buf = np.fromfile(path, dtype=np.uint8)
    n = int.from_bytes(buf[:8].tobytes(), "little")
    head = json.loads(buf[8:8 + n].tobytes())
    base = -(-(8 + n) // _ALIGN) * _ALIGN
    out = {}
    for h in head:
        dt = np.dtype(h["dtype"])
        count = int(np.prod(h["shape"], dtype=np.int64))
        start = base + h["offset"]
        flat = buf[start:start + count * dt.itemsize].view(dt)
        out[h["name"]] = flat.reshape(tuple(h["shape"]))
    return out


def _shm_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class SimProcess:
    """A forked simulator; :meth:`start` it first, then :meth:`simulate` like ``sim.simulate``."""

    def __init__(self, pid: int, to_child, from_child):
        self._pid = pid
        self._to = to_child
        self._from = from_child
        self._alive = True

    # ---- parent side ------------------------------------------------------------------
    @classmethod
    def start(cls) -> "SimProcess | None":
        """Fork the simulator process; None where ``fork`` is unavailable.

        Call it before starting threads (forking a threaded process is unsafe).
        """
        if not hasattr(os, "fork"):
            return None
        r1, w1 = os.pipe()   # parent -> child: jobs
        r2, w2 = os.pipe()   # child -> parent: answers
        pid = os.fork()
        if pid == 0:   # child
            os.close(w1)
            os.close(r2)
            code = 0
            try:
                _serve(os.fdopen(r1, "r"), os.fdopen(w2, "w"))
            except BaseException:   # noqa: BLE001 - the parent falls back; stay silent
                code = 1
            finally:
                os._exit(code)
        os.close(r1)
        os.close(w2)
        return cls(pid, os.fdopen(w1, "w"), os.fdopen(r2, "r"))

    @property
    def alive(self) -> bool:
        return self._alive

    def simulate(self, program, memory, *, stall_permille: int = 0, stall_seed: int = 1):
        """``sim.simulate(program, memory, ...)`` in the child; in this process if it is gone."""
        if self._alive:
            try:
                return self._remote(program, memory, stall_permille, stall_seed)
            except SimProcessError:
                self.close()
        import sim
        return sim.simulate(program, memory, stall_permille=stall_permille,
                            stall_seed=stall_seed)

    def _remote(self, program, memory, stall_permille, stall_seed):
        import numpy as np

        from .errors import AxwError, ProgramError
        job = Path(tempfile.mkdtemp(prefix="axw-sim-", dir=_shm_dir()))
        try:
            doc = {"config": json.loads(program.config.to_json()),
                   "tensors": list(program.tensors), "meta": program.meta}
            (job / "program.json").write_text(json.dumps(doc))
            _write_bundle(job / "program.bin", program.arrays)
            _write_bundle(job / "memory.bin", {str(i): np.asarray(m)
                                               for i, m in enumerate(memory)})
            req = {"job": str(job), "stall_permille": int(stall_permille),
                   "stall_seed": int(stall_seed)}
            try:
                self._to.write(json.dumps(req) + "\n")
                self._to.flush()
                line = self._from.readline()
            except (OSError, ValueError) as e:
                raise SimProcessError(f"simulator process: {e}") from None
            if not line:
                raise SimProcessError("simulator process exited")
            ans = json.loads(line)
            if "error" in ans:
                typed = {"ProgramError": ProgramError, "AxwError": AxwError}.get(ans["error"])
                if typed is not None:   # the simulator's own refusals keep their type
                    raise typed(ans["message"])
                raise SimProcessError(f"simulator process: {ans['error']}: {ans['message']}")
            res = _read_bundle(job / "result.bin")
            out = [res[str(i)] for i in range(len(res))]
            stats = json.loads((job / "stats.json").read_text())
            return RemoteResult(out, int(ans["cycles"]), stats)
        finally:
            shutil.rmtree(job, ignore_errors=True)

    def close(self) -> None:
        """End the child (it exits on end of input) and reap it."""
        if not self._alive:
            return
        self._alive = False
        for f in (self._to, self._from):
            try:
                f.close()
            except OSError:
                pass
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass


# ---- child side -----------------------------------------------------------------------
def _serve(jobs, answers) -> None:
    """Load the kernel, then run one job per input line until end of input."""
    import sim
    from .config import HardwareConfig
    from .program import Program
    sim.warm_up()
    for line in jobs:
        req = json.loads(line)
        job = Path(req["job"])
        try:
            # the parent compiled and validated this Program; it is rebuilt as it was
            doc = json.loads((job / "program.json").read_text())
            program = Program(HardwareConfig.from_dict(doc["config"]), tuple(doc["tensors"]),
                              _read_bundle(job / "program.bin"), doc["meta"])
            mem = _read_bundle(job / "memory.bin")
            memory = [mem[str(i)] for i in range(len(mem))]
            res = sim.simulate(program, memory, stall_permille=req["stall_permille"],
                               stall_seed=req["stall_seed"])
            _write_bundle(job / "result.bin", {str(i): m for i, m in enumerate(res.memory)})
            (job / "stats.json").write_text(json.dumps(res.stats))
            ans = {"cycles": int(res.cycles)}
        except Exception as e:   # noqa: BLE001 - reported to the parent, typed there
            ans = {"error": type(e).__name__, "message": str(e)}
        answers.write(json.dumps(ans) + "\n")
        answers.flush()
    sys.stdout.flush()
