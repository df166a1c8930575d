"""Energy and off-chip traffic of a run from its access counts and a per-access energy table.

The table (TOML, picojoules) names its published source; the default is
``reports/data/energy_45nm.toml`` (Horowitz, ISSCC 2014, 45 nm).  Energy is split into
four parts, each a sum of counts times a per-access figure:

* ``mac``: useful MACs × ``mac_pj``;
* ``local_memory``: local-memory reads and writes × ``acc_bits`` × ``lmem_pj_per_bit``;
* ``buffers``: output-bank reads and writes × ``acc_bits`` × ``bank_pj_per_bit``, plus
  stream-FIFO and load-FIFO entries written and read once × their width × ``fifo_pj_per_bit``;
* ``dram``: off-chip bytes × 8 × ``dram_pj_per_bit``.

Every function here accepts plain numbers or NumPy arrays of counts (the analytical model
evaluates many configurations at once).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from accel.config import HardwareConfig
from accel.errors import AxwError
from accel.fileio import read_toml

__all__ = ["EnergyTableError", "EnergyTable", "load_energy_table", "default_energy_table",
           "energy_from_counts", "counts_from_stats", "compulsory_bytes", "traffic",
           "stats_extras", "run_extras", "ENERGY_PARTS"]

#: Parts of the energy breakdown, in report order.
ENERGY_PARTS = ("mac", "local_memory", "buffers", "dram")
#: Flag bits carried by each streamed element (FIRST, LAST, FRESH).
_FLAG_BITS = 3


class EnergyTableError(AxwError):
    """An energy table is missing, malformed, or has unknown or missing keys."""


@dataclass(frozen=True)
class EnergyTable:
    """Per-access energies in picojoules and the publication they come from."""

    source: str
    mac_pj: float
    lmem_pj_per_bit: float
    bank_pj_per_bit: float
    fifo_pj_per_bit: float
    dram_pj_per_bit: float

    def __post_init__(self):
        if not isinstance(self.source, str) or not self.source.strip():
            raise EnergyTableError("energy table: source must name the publication")
        for f in fields(self):
            if f.name == "source":
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise EnergyTableError(f"energy table: {f.name} must be a number >= 0, got {v!r}")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_energy_table(path: str | Path | None = None) -> EnergyTable:
    """The table in TOML file ``path`` (strict: every key required, none unknown), or the
    packaged default when ``path`` is None."""
    d, where = read_toml(path, EnergyTableError, default=("reports", "data/energy_45nm.toml"))
    known = [f.name for f in fields(EnergyTable)]
    unknown = sorted(set(d) - set(known))
    missing = [k for k in known if k not in d]
    if unknown:
        raise EnergyTableError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                               f"known: {', '.join(known)}")
    if missing:
        raise EnergyTableError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        return EnergyTable(**d)
    except EnergyTableError as e:
        raise EnergyTableError(f"{where}: {e}") from None


_DEFAULT: list = []


def default_energy_table() -> EnergyTable:
    if not _DEFAULT:
        _DEFAULT.append(load_energy_table())
    return _DEFAULT[0]


def _element_bits(cfg: HardwareConfig):
    """Width of one stream-FIFO entry: value, local address, output slot, flags."""
    return cfg.operand_bits + cfg.lmem_addr_bits + cfg.slot_bits + _FLAG_BITS


def energy_from_counts(counts: dict, cfg: HardwareConfig, table: EnergyTable | None = None) -> dict:
    """Energy in pJ per part (``ENERGY_PARTS``) and ``total`` from access counts.

    ``counts`` keys: useful_macs, lmem_reads, lmem_writes, out_bank_reads, out_bank_writes,
    stream_fifo_writes, load_fifo_writes, offchip_bytes (numbers or arrays).
    ``cfg`` may also be a mapping of arrays with the HardwareConfig fields used here
    (operand_bits, acc_bits, cols, lmem_depth, out_bank_depth).
    """
    t = table or default_energy_table()
    acc = _get(cfg, "acc_bits")
    elem_bits = _get(cfg, "element_bits")
    load_bits = _get(cfg, "cols") * acc
    out = {
        "mac": counts["useful_macs"] * t.mac_pj,
        "local_memory": (counts["lmem_reads"] + counts["lmem_writes"]) * acc * t.lmem_pj_per_bit,
        "buffers": ((counts["out_bank_reads"] + counts["out_bank_writes"]) * acc
                    * t.bank_pj_per_bit
                    + 2 * (counts["stream_fifo_writes"] * elem_bits
                           + counts["load_fifo_writes"] * load_bits) * t.fifo_pj_per_bit),
        "dram": counts["offchip_bytes"] * 8 * t.dram_pj_per_bit,
    }
    out["total"] = out["mac"] + out["local_memory"] + out["buffers"] + out["dram"]
    return out


def _get(cfg, name):
    if isinstance(cfg, HardwareConfig):
        return _element_bits(cfg) if name == "element_bits" else getattr(cfg, name)
    if name == "element_bits":
        import numpy as np
        addr = np.maximum(1, np.ceil(np.log2(np.maximum(cfg["lmem_depth"], 2))))
        slot = np.maximum(1, np.ceil(np.log2(np.maximum(cfg["out_bank_depth"], 2))))
        return cfg["operand_bits"] + addr + slot + _FLAG_BITS
    return cfg[name]


def counts_from_stats(stats: dict) -> dict:
    """The access counts of :func:`energy_from_counts` from one layer's simulator stats."""
    oc = stats["onchip"]
    return {"useful_macs": stats["useful_macs"], "lmem_reads": oc["lmem_reads"],
            "lmem_writes": oc["lmem_writes"], "out_bank_reads": oc["out_bank_reads"],
            "out_bank_writes": oc["out_bank_writes"],
            "stream_fifo_writes": oc["stream_fifo_writes"],
            "load_fifo_writes": oc["load_fifo_writes"], "offchip_bytes": stats["offchip_bytes"]}


def compulsory_bytes(tensors, cfg: HardwareConfig) -> dict:
    """Compulsory off-chip bytes per tensor: every input read once (a streamed sparse
    tensor with its compressed index), Y written once, intermediates (T, U) zero since
    they could stay on chip."""
    out = {}
    for t in tensors:
        nbytes = (t["bits"] + 7) // 8
        size = t["rows"] * t["cols"]
        kind, src = t["kind"], t.get("source") or {}
        if kind == "intermediate":
            out[t["name"]] = 0
        elif src.get("what") in ("a_data", "x_data"):
            out[t["name"]] = size * (nbytes + cfg.stream_index_bytes)
        else:
            out[t["name"]] = size * nbytes
    return out


def traffic(stats: dict, tensors, cfg: HardwareConfig) -> dict:
    """Off-chip bytes per tensor (read + written) next to the compulsory minimum."""
    comp = compulsory_bytes(tensors, cfg)
    rd, wr = stats["offchip_read_bytes"], stats["offchip_write_bytes"]
    per = {}
    for name in comp:
        moved = int(rd.get(name, 0)) + int(wr.get(name, 0))
        per[name] = {"read_bytes": int(rd.get(name, 0)), "write_bytes": int(wr.get(name, 0)),
                     "bytes": moved, "compulsory_bytes": int(comp[name])}
    total = sum(v["bytes"] for v in per.values())
    total_comp = sum(v["compulsory_bytes"] for v in per.values())
    return {"per_tensor": per, "bytes": total, "compulsory_bytes": total_comp,
            "over_compulsory": total / total_comp if total_comp else None}


def stats_extras(layer_stats: dict, tensors, cfg: HardwareConfig,
                 table: EnergyTable | None = None) -> dict:
    """``{"energy_pj": ..., "traffic": ...}`` for one layer: merge into its stats.json
    entry (``program.tensors`` gives ``tensors``)."""
    t = table or default_energy_table()
    e = energy_from_counts(counts_from_stats(layer_stats), cfg, t)
    return {"energy_pj": {k: float(v) for k, v in e.items()}, "energy_source": t.source,
            "traffic": traffic(layer_stats, tensors, cfg)}


def run_extras(result, table: EnergyTable | None = None) -> dict:
    """Run-level ``energy_pj`` and ``traffic`` (sums over layers) plus per-layer extras,
    for an :class:`accel.runner.RunResult`: ``{"energy_pj", "traffic", "layers": [...]}``."""
    layers = [stats_extras(lr.stats, lr.program.tensors, result.config, table)
              for lr in result.layers]
    energy = {k: sum(x["energy_pj"][k] for x in layers) for k in (*ENERGY_PARTS, "total")}
    tb = sum(x["traffic"]["bytes"] for x in layers)
    tc = sum(x["traffic"]["compulsory_bytes"] for x in layers)
    return {"energy_pj": energy, "energy_source": layers[0]["energy_source"],
            "traffic": {"bytes": tb, "compulsory_bytes": tc,
                        "over_compulsory": tb / tc if tc else None},
            "layers": layers}
