"""The arithmetic contract: one table of integer formats and rules that every level obeys.

=========================  ==========================================================
stage                      rule
=========================  ==========================================================
operands A, X, W           ``operand`` format (signed, ``operand_bits`` wide)
product                    exact, then reduced modulo 2**acc_bits (two's complement)
accumulation               ``acc`` format, two's-complement **wrap** at every add
intermediate (X·W or A·X)  ``mid`` requantization, or none (kept as wrapped ``acc``)
output Y                   ``out`` requantization, or none (the wrapped ``acc`` sums)
requantization             ``(v + 2**(shift-1)) >> shift`` (round half up, arithmetic
                           shift), then saturate to the target format
=========================  ==========================================================

Wrapping sums are associative modulo ``2**acc_bits``, so without a ``mid``
requantization the result does not depend on tiling or association order.  With one,
the order is part of the contract and the reference takes it as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ContractError, ValueRangeError

__all__ = ["IntFormat", "Requant", "Contract", "CONTRACT_NAMES", "make_contract"]


@dataclass(frozen=True)
class IntFormat:
    """A two's-complement (or unsigned) integer format of ``bits`` bits."""

    bits: int
    signed: bool = True

    def __post_init__(self):
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 64:
            raise ContractError(f"integer format bits must be in 1..64, got {self.bits!r}")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def name(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.bits}"

    def wrap(self, v: np.ndarray) -> np.ndarray:
        """Reduce integers modulo ``2**bits`` into this format (int64 result)."""
        u = np.asarray(v).astype(np.uint64, copy=False) if np.asarray(v).dtype != np.uint64 else np.asarray(v)
        if self.bits == 64:
            return u.view(np.int64) if self.signed else u
        mask = np.uint64((1 << self.bits) - 1)
        low = u & mask
        if self.signed:
            sign = np.uint64(1 << (self.bits - 1))
            return (low ^ sign).astype(np.int64) - np.int64(1 << (self.bits - 1))
        return low.astype(np.int64)

    def saturate(self, v: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(v, dtype=np.int64), self.min, self.max)

    def check(self, v: np.ndarray, what: str) -> None:
        """Raise ValueRangeError naming the first value of ``v`` outside this format."""
        v = np.asarray(v)
        if v.size == 0:
            return
        bad = (v < self.min) | (v > self.max)
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueRangeError(
                f"{what}: value {int(v[pos])} at position {pos} is outside {self.name} "
                f"[{self.min}, {self.max}]")


@dataclass(frozen=True)
class Requant:
    """Round-half-up arithmetic right shift by ``shift``, then saturate to ``out``."""

    shift: int
    out: IntFormat

    def __post_init__(self):
        if not isinstance(self.shift, int) or not 0 <= self.shift <= 62:
            raise ContractError(f"requantization shift must be in 0..62, got {self.shift!r}")

    def apply(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.int64)
        if self.shift:
            v = (v + np.int64(1 << (self.shift - 1))) >> np.int64(self.shift)
        return self.out.saturate(v)


CONTRACT_NAMES = ("exact", "int8")


@dataclass(frozen=True)
class Contract:
    """The arithmetic rule of one problem: formats, wrap, and the requantization points."""

    name: str
    operand: IntFormat
    acc: IntFormat
    mid: Requant | None = None
    out: Requant | None = None

    def __post_init__(self):
        if self.acc.bits < self.operand.bits:
            raise ContractError(
                f"accumulator ({self.acc.name}) narrower than operands ({self.operand.name})")
        for r in (self.mid, self.out):
            if r is not None and r.out.bits > self.acc.bits:
                raise ContractError(f"requantized format {r.out.name} wider than {self.acc.name}")

    @property
    def mid_format(self) -> IntFormat:
        """Format of the intermediate product (X·W or A·X) as stored between phases."""
        return self.mid.out if self.mid is not None else self.acc

    @property
    def out_format(self) -> IntFormat:
        return self.out.out if self.out is not None else self.acc

    @property
    def order_independent(self) -> bool:
        return self.mid is None

    def product_accumulate(self, s: np.ndarray | "object", d: np.ndarray) -> np.ndarray:
        """Wrapped ``s @ d`` in the accumulator format; ``s`` may be scipy.sparse.

        Computed in uint64, whose overflow numpy and scipy define as modulo 2**64; since
        2**acc_bits divides 2**64, the low bits are the exact wrapped sum.
        """
        su = s.astype(np.uint64) if hasattr(s, "tocsr") else np.asarray(s).astype(np.uint64)
        du = d.astype(np.uint64) if hasattr(d, "tocsr") else np.asarray(d).astype(np.uint64)
        r = su @ du
        if hasattr(r, "toarray"):
            r = r.toarray()
        return self.acc.wrap(np.asarray(r))

    def finish_mid(self, v: np.ndarray) -> np.ndarray:
        return self.mid.apply(v) if self.mid is not None else v

    def finish_out(self, v: np.ndarray) -> np.ndarray:
        return self.out.apply(v) if self.out is not None else v

    def to_json(self) -> dict:
        def rq(r):
            return None if r is None else {"shift": r.shift, "out": r.out.name}
        return {"name": self.name, "operand": self.operand.name, "acc": self.acc.name,
                "accumulate": "wrap", "mid": rq(self.mid), "out": rq(self.out)}

    @classmethod
    def from_json(cls, d: dict) -> "Contract":
        def fmt(s):
            return IntFormat(int(s[1:]), s[0] == "s")

        def rq(r):
            return None if r is None else Requant(int(r["shift"]), fmt(r["out"]))
        return cls(d["name"], fmt(d["operand"]), fmt(d["acc"]), rq(d["mid"]), rq(d["out"]))


def make_contract(name: str, operand_bits: int = 8, acc_bits: int = 32,
                  mid_shift: int = 0, out_shift: int = 0) -> Contract:
    """Build a named contract for the given widths.

    ``exact``: s<operand_bits> operands, s<acc_bits> wrapping sums, no requantization.
    ``int8``: the same operands and accumulator, with the intermediate and the output
    requantized to the operand format (round half up, saturate) by the given shifts.
    """
    op = IntFormat(operand_bits, True)
    acc = IntFormat(acc_bits, True)
    if name == "exact":
        return Contract("exact", op, acc)
    if name == "int8":
        return Contract("int8", op, acc, Requant(mid_shift, op), Requant(out_shift, op))
    raise ContractError(f"unknown contract {name!r}; known: {', '.join(CONTRACT_NAMES)}")
