"""The executable specification: NumPy evaluation of a Problem under its contract."""

from __future__ import annotations

import numpy as np

from .errors import AxwError
from .problem import Problem

__all__ = ["reference", "ORDERS"]

#: ``a(xw)`` computes T = X·W first; ``(ax)w`` computes U = A·X first.
ORDERS = ("a(xw)", "(ax)w")


def reference(problem: Problem, order: str = "a(xw)") -> np.ndarray:
    """Y (o × h, int64) following the contract literally, part by part.

    Each product is the contract's wrapped sum (exact in uint64 modulo 2**64, reduced to
    the accumulator), the intermediate gets the contract's ``mid`` rule, the output its
    ``out`` rule.  Without a ``mid`` requantization both orders give the same bits.
    """
    if order not in ORDERS:
        raise AxwError(f"unknown order {order!r}; expected one of {ORDERS}")
    k = problem.contract
    y = np.zeros((problem.o, problem.h), dtype=np.int64)
    for part in problem.parts:
        xp = problem.x_part(part)
        wp = problem.w_part(part)
        if order == "a(xw)":
            mid = k.finish_mid(k.product_accumulate(xp, wp))
            acc = k.product_accumulate(part.a, mid)
        else:
            mid = k.finish_mid(k.product_accumulate(part.a, xp))
            acc = k.product_accumulate(mid, wp)
        y[:, part.y_cols] = k.finish_out(acc)
    return y
