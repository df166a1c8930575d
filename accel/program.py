"""Program: the plain-array schedule that the simulator and the RTL both execute.

Vocabulary (see docs/machine.md for the cycle rules):

* tensor  -- a named 2-D integer array in off-chip memory (inputs, intermediates, Y).
* phase   -- one sparse×dense product ``S · D -> out``; S streamed, D stationary.
* tile    -- one D tile in one local-memory bank plus the stream elements that use it.
* block   -- the tiles that fill one half of the output banks; written back together.
* stream   -- the elements of one (row block, K tile) per PE row, replayed by every
             column tile (``t_stream``).
* element -- one streamed nonzero ``(src, addr, slot, flags)`` for one PE row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import HardwareConfig
from .errors import ProgramError, InputFileError
from .fileio import atomic_write_text, atomic_writer

__all__ = ["Program", "transfer_bytes", "FLAG_FIRST", "FLAG_LAST", "FLAG_FRESH", "SLOT_ZERO", "SLOT_NONE"]

#: element starts a segment: the PE accumulator restarts from this product.
FLAG_FIRST = 1
#: element ends a segment: the accumulators go to the output bank slot.
FLAG_LAST = 2
#: on a segment's last element: the slot is written (not added to) in the output bank.
FLAG_FRESH = 4
#: writeback entry that writes a zero row (an empty output row).
SLOT_ZERO = -2
#: writeback lane idle in this step.
SLOT_NONE = -1

_ARRAYS = {
    # phases
    "ph_s": np.int32, "ph_d": np.int32, "ph_out": np.int32, "ph_rq_shift": np.int32,
    "ph_rq_bits": np.int32, "ph_s_rq_shift": np.int32, "ph_s_rq_bits": np.int32,
    "ph_out_cols_ptr": np.int64, "ph_out_cols": np.int64,
    # tiles
    "t_phase": np.int32, "t_bank": np.int8, "t_block": np.int32, "t_col0": np.int32,
    "t_ncols": np.int32, "t_broadcast": np.int8, "t_prev_same_bank": np.int32,
    "t_stream": np.int32,
    "load_ptr": np.int64, "ld_drow": np.int64, "ld_addr": np.int32,
    # blocks
    "b_phase": np.int32, "b_half": np.int8, "b_first_tile": np.int32, "b_last_tile": np.int32,
    "b_prev_same_half": np.int32, "b_col0": np.int32, "b_ncols": np.int32, "wb_ptr": np.int64,
    "wb_slot": np.int32, "wb_row": np.int64, "wb_merge": np.int8, "wb_mrow": np.int64,
    # streams
    "row_stream_ptr": np.int64, "e_src": np.int64, "e_addr": np.int32, "e_slot": np.int32,
    "e_flags": np.int8,
}


def transfer_bytes(tensor_bits: list, s: int, d: int, out: int, config: HardwareConfig
                   ) -> tuple[int, int, int]:
    """Bytes of one DRAM transfer of a phase reading tensor ``s`` (a streamed element: its
    value and its compressed index), loading tensor ``d`` (one value per column) and
    writing tensor ``out`` (one value per column).  Simulator and RTL both use this."""
    nb = lambda bits: (bits + 7) // 8  # noqa: E731
    return (nb(tensor_bits[s]) + config.stream_index_bytes, nb(tensor_bits[d]),
            nb(tensor_bits[out]))


@dataclass(frozen=True, eq=False)
class Program:
    """A compiled schedule.  ``arrays`` maps the names of ``_ARRAYS`` to numpy arrays;
    ``tensors`` lists ``{"name", "rows", "cols", "bits", "kind"}``; ``meta`` is JSON."""

    config: HardwareConfig
    tensors: tuple
    arrays: dict
    meta: dict = field(default_factory=dict)

    def __getattr__(self, name):
        arrays = self.__dict__.get("arrays")
        if arrays is not None and name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @property
    def n_tiles(self) -> int:
        return len(self.arrays["t_phase"])

    @property
    def n_blocks(self) -> int:
        return len(self.arrays["b_phase"])

    @property
    def n_phases(self) -> int:
        return len(self.arrays["ph_s"])

    @property
    def n_elements(self) -> int:
        return len(self.arrays["e_src"])

    def phase_transfer_bytes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per phase: bytes per streamed element, per loaded value, per written value."""
        bits = [t["bits"] for t in self.tensors]
        a = self.arrays
        rows = [transfer_bytes(bits, s, d, o, self.config)
                for s, d, o in zip(a["ph_s"], a["ph_d"], a["ph_out"])]
        cols = np.array(rows, np.int64).reshape(len(rows), 3)
        return cols[:, 0].copy(), cols[:, 1].copy(), cols[:, 2].copy()

    def credit_cap(self) -> int:
        """The token bucket's cap (docs/machine.md): it holds up to two of the largest
        transfers of the program, and at least two cycles' bandwidth."""
        s, d, o = self.phase_transfer_bytes()
        C, R = self.config.cols, self.config.rows
        cap = max([self.config.dram_bytes_per_cycle]
                  + [int(max(a, b * C, c * C * R)) for a, b, c in zip(s, d, o)])
        return 2 * cap

    def phase_dependencies(self) -> tuple[np.ndarray, np.ndarray]:
        """For each phase, the latest earlier phase that writes its S tensor and its D
        tensor (-1: none; such a tensor is an input, readable from the start)."""
        a = self.arrays
        nph = self.n_phases
        s_dep = np.full(nph, -1, np.int64)
        d_dep = np.full(nph, -1, np.int64)
        for p in range(nph):
            for q in range(p):
                if a["ph_out"][q] == a["ph_s"][p]:
                    s_dep[p] = q
                if a["ph_out"][q] == a["ph_d"][p]:
                    d_dep[p] = q
        return s_dep, d_dep

    def tensor_id(self, name: str) -> int:
        for i, t in enumerate(self.tensors):
            if t["name"] == name:
                return i
        raise ProgramError(f"program has no tensor {name!r}")

    # ---- validation -----------------------------------------------------------------
    def validate(self) -> "Program":
        """Check every bound the simulator and the RTL rely on; raise ProgramError."""
        a, cfg = self.arrays, self.config
        R, C = cfg.rows, cfg.cols
        for name, dt in _ARRAYS.items():
            if name not in a:
                raise ProgramError(f"program array {name!r} is missing")
            if a[name].dtype != dt:
                raise ProgramError(f"program array {name!r} has dtype {a[name].dtype}, want {dt}")
        nt, nb, npf = self.n_tiles, self.n_blocks, self.n_phases
        nten = len(self.tensors)

        def check(cond, msg):
            if not cond:
                raise ProgramError(msg)

        for k in ("ph_s", "ph_d", "ph_out"):
            check(((a[k] >= 0) & (a[k] < nten)).all(), f"{k} names a tensor outside 0..{nten - 1}")
        check(a["ph_out_cols_ptr"].shape == (npf + 1,), "ph_out_cols_ptr has the wrong length")
        check(((a["t_phase"] >= 0) & (a["t_phase"] < npf)).all(), "t_phase out of range")
        check((np.diff(a["t_phase"]) >= 0).all(), "tiles are not in phase order")
        check(((a["t_ncols"] >= 1) & (a["t_ncols"] <= C)).all(), f"t_ncols outside 1..{C}")
        check(((a["t_bank"] == 0) | (a["t_bank"] == 1)).all(), "t_bank not 0/1")
        check(((a["t_block"] >= 0) & (a["t_block"] < nb)).all(), "t_block out of range")
        check((np.diff(a["t_block"]) >= 0).all(), "tiles are not in block order")
        check(a["load_ptr"].shape == (nt, R + 1), f"load_ptr must have shape ({nt}, {R + 1})")
        lp = a["load_ptr"]
        check((np.diff(lp, axis=1) >= 0).all() and lp[0, 0] == 0 and lp[-1, -1] == len(a["ld_addr"])
              if nt else True, "load_ptr is not monotone or does not cover the load list")
        if nt > 1:
            check((lp[1:, 0] == lp[:-1, -1]).all(), "load_ptr rows are not contiguous")
        check(((a["ld_addr"] >= 0) & (a["ld_addr"] < cfg.lmem_depth)).all(),
              f"a load address is outside the local memory depth {cfg.lmem_depth}")
        bc = a["t_broadcast"].astype(bool)
        if nt:
            check((lp[bc, 2:] == lp[bc, 1:2]).all() if R > 1 else True,
                  "a broadcast tile has loads outside lane 0")
        check(((a["t_prev_same_bank"] >= -1) & (a["t_prev_same_bank"] < np.arange(nt))).all(),
              "t_prev_same_bank must point to an earlier tile")
        check(((a["b_half"] == 0) | (a["b_half"] == 1)).all(), "b_half not 0/1")
        check(((a["b_prev_same_half"] >= -1) & (a["b_prev_same_half"] < np.arange(nb))).all(),
              "b_prev_same_half must point to an earlier block")
        rp = a["row_stream_ptr"]
        ng = rp.shape[1] - 1
        check(rp.ndim == 2 and rp.shape[0] == R, f"row_stream_ptr must have {R} rows")
        check(((a["t_stream"] >= 0) & (a["t_stream"] < ng)).all(), "t_stream out of range")
        ne = self.n_elements
        check((np.diff(rp, axis=1) >= 0).all(), "row_stream_ptr is not monotone")
        check(rp[0, 0] == 0 and rp[-1, -1] == ne and (rp[1:, 0] == rp[:-1, -1]).all(),
              "row_stream_ptr does not cover the element list")
        check(((a["e_addr"] >= 0) & (a["e_addr"] < cfg.lmem_depth)).all(),
              f"an element address is outside the local memory depth {cfg.lmem_depth}")
        check(((a["e_slot"] >= 0) & (a["e_slot"] < cfg.out_bank_depth)).all(),
              f"an element slot is outside the output bank depth {cfg.out_bank_depth}")
        check(((a["wb_slot"] >= SLOT_ZERO) & (a["wb_slot"] < cfg.out_bank_depth)).all(),
              "a writeback slot is out of range")
        check(a["wb_slot"].ndim == 2 and a["wb_slot"].shape[1] == R, "wb_slot must be steps × rows")
        check(a["wb_ptr"].shape == (nb + 1,) and a["wb_ptr"][-1] == a["wb_slot"].shape[0],
              "wb_ptr does not cover the writeback steps")
        for p in range(npf):
            s, d, o = (self.tensors[a[k][p]] for k in ("ph_s", "ph_d", "ph_out"))
            tl = a["t_phase"] == p
            if not tl.any():
                continue
            ptr = a["ph_out_cols_ptr"]
            cols = a["ph_out_cols"][ptr[p]:ptr[p + 1]]
            check(cols.size == d["cols"] and (cols >= 0).all() and (cols < o["cols"]).all(),
                  f"phase {p}: output column map does not match D's {d['cols']} columns")
            idx = np.flatnonzero(tl)
            check((a["t_col0"][idx] + a["t_ncols"][idx] <= d["cols"]).all(),
                  f"phase {p}: a tile reaches past D's columns")
            lo, hi = lp[idx[0], 0], lp[idx[-1], -1]
            check(((a["ld_drow"][lo:hi] >= 0) & (a["ld_drow"][lo:hi] < d["rows"])).all(),
                  f"phase {p}: a load reads outside D ({d['rows']} rows)")
            gs = a["t_stream"][idx]
            for r in range(R):
                elo, ehi = rp[r, gs.min()], rp[r, gs.max() + 1]
                src = a["e_src"][elo:ehi]
                check(((src >= 0) & (src < s["rows"] * s["cols"])).all(),
                      f"phase {p}: an element reads outside S")
        if len(a["wb_slot"]):
            used = a["wb_slot"] != SLOT_NONE
            mg = a["wb_merge"] != 0
            nvec = (used & ~mg).sum(axis=1) + (used & mg).any(axis=1)
            worst = int(nvec.max())
            check(worst <= cfg.writeback_vectors,
                  f"a writeback step writes {worst} vectors; the hardware writes at most "
                  f"{cfg.writeback_vectors} (wb_vectors)")
        wp = a["wb_ptr"]
        for b in range(nb):
            rows = self.tensors[a["ph_out"][a["b_phase"][b]]]["rows"]
            sl = slice(wp[b], wp[b + 1])
            used = a["wb_slot"][sl] != SLOT_NONE
            plain = used & (a["wb_merge"][sl] == 0)
            wr = a["wb_row"][sl]
            check(((wr[plain] >= 0) & (wr[plain] < rows)).all(),
                  f"block {b}: a writeback row is outside the output's {rows} rows")
            merged = (used & (a["wb_merge"][sl] != 0)).any(axis=1)
            mr = a["wb_mrow"][sl][merged]
            check(((mr >= 0) & (mr < rows)).all(),
                  f"block {b}: a merged writeback row is outside the output's {rows} rows")
        return self

    # ---- persistence ----------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write ``program.npz`` (arrays) and ``program.json`` (config, tensors, meta)."""
        folder = Path(folder)
        with atomic_writer(folder / "program.npz") as f:
            np.savez(f, **self.arrays)   # uncompressed: a run folder is written in milliseconds
        doc = {"format": "axw-program-1", "config": json.loads(self.config.to_json()),
               "tensors": list(self.tensors), "meta": self.meta}
        atomic_write_text(folder / "program.json", json.dumps(doc, indent=1, sort_keys=True))

    @classmethod
    def load(cls, folder: str | Path) -> "Program":
        folder = Path(folder)
        try:
            doc = json.loads((folder / "program.json").read_text())
            with np.load(folder / "program.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError) as e:
            raise InputFileError(f"{folder}: cannot read program ({e})") from None
        if doc.get("format") != "axw-program-1":
            raise InputFileError(f"{folder}/program.json: unknown format {doc.get('format')!r}")
        cfg = HardwareConfig.from_dict(doc["config"], source=f"{folder}/program.json")
        return cls(cfg, tuple(doc["tensors"]), arrays, doc["meta"]).validate()
