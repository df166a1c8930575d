"""Problem: the integer operands of Y = A·X·W, the contract they obey, and their structure."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .contract import Contract, IntFormat
from .errors import ShapeError, ValueRangeError

__all__ = ["Part", "GatherSpec", "Problem", "make_problem", "as_int_dense", "as_int_sparse"]


def _check_integer_values(vals: np.ndarray, what: str, fmt: IntFormat, coords=None) -> np.ndarray:
    """Return ``vals`` as int64, or raise naming the first NaN/non-integer/out-of-range value."""
    vals = np.asarray(vals)
    if vals.dtype == np.bool_:
        vals = vals.astype(np.int64)
    if vals.dtype.kind == "c":
        raise ValueRangeError(f"{what}: complex values are not supported")
    if vals.dtype.kind not in "iuf":
        raise ValueRangeError(f"{what}: dtype {vals.dtype} is not numeric")

    def where(flat_i):
        if coords is not None:   # arrays, or a function making them (only on an error)
            cs = coords() if callable(coords) else coords
            return tuple(int(c[flat_i]) for c in cs)
        return tuple(int(i) for i in np.unravel_index(flat_i, vals.shape))

    flat = vals.reshape(-1)
    if vals.dtype.kind == "f":
        bad = ~np.isfinite(flat)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueRangeError(f"{what}: value {flat[i]} at position {where(i)} is not finite")
        frac = flat != np.round(flat)
        if frac.any():
            i = int(np.argmax(frac))
            raise ValueRangeError(f"{what}: value {flat[i].item()} at position {where(i)} "
                                  f"is not an integer")
    if flat.size:
        lo = flat < fmt.min
        hi = flat > fmt.max
        bad = lo | hi
        if bad.any():
            i = int(np.argmax(bad))
            v = flat[i]
            v = int(v) if vals.dtype.kind in "iu" else float(v)
            raise ValueRangeError(f"{what}: value {v} at position {where(i)} is outside "
                                  f"{fmt.name} [{fmt.min}, {fmt.max}]")
    return flat.astype(np.int64).reshape(vals.shape)


def as_int_dense(arr, what: str, fmt: IntFormat, ndim: int = 2) -> np.ndarray:
    if sp.issparse(arr):
        arr = arr.toarray()
    arr = np.asarray(arr)
    if arr.ndim != ndim:
        raise ShapeError(f"{what}: expected {ndim} dimensions, got shape {arr.shape}")
    return _check_integer_values(arr, what, fmt)


def as_int_sparse(m, what: str, fmt: IntFormat) -> sp.csr_matrix:
    if not sp.issparse(m):
        m = np.asarray(m)
        if m.ndim != 2:
            raise ShapeError(f"{what}: expected 2 dimensions, got shape {m.shape}")
        as_int_dense(m, what, fmt)  # names the position in dense coordinates
        m = sp.csr_matrix(m)
    m = sp.csr_matrix(m)
    m.sum_duplicates()
    m.sort_indices()
    def coords():
        return np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)), m.indices
    data = _check_integer_values(m.data, what, fmt, coords=coords)
    out = sp.csr_matrix((data, m.indices.astype(np.int64), m.indptr.astype(np.int64)), shape=m.shape)
    out.eliminate_zeros()
    return out


@dataclass(frozen=True, eq=False)
class Part:
    """``Y[:, y_cols] = a · X[:, x_cols] · W[x_cols][:, y_cols]``; parts cover Y's columns."""

    a: sp.csr_matrix
    x_cols: np.ndarray
    y_cols: np.ndarray


@dataclass(frozen=True)
class GatherSpec:
    """A is a 0/1 gather (at most one nonzero per row in each of ``taps`` column blocks of
    ``pixels``) and X is block-diagonal: ``taps`` copies of the ``pixels × channels`` image.

    The compiler lowers such an A·X to address generation into the image instead of
    multiplications."""

    taps: int
    pixels: int
    channels: int


@dataclass(frozen=True, eq=False)
class Problem:
    """The integer operands of one layer and how they are to be combined."""

    name: str
    x: np.ndarray | sp.csr_matrix
    w: np.ndarray
    contract: Contract
    parts: tuple[Part, ...]
    gather: GatherSpec | None = None
    meta: dict = field(default_factory=dict)

    @property
    def o(self) -> int:
        return self.parts[0].a.shape[0]

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def c(self) -> int:
        return self.x.shape[1]

    @property
    def h(self) -> int:
        return self.w.shape[1]

    @property
    def a(self) -> sp.csr_matrix:
        if len(self.parts) != 1:
            raise ShapeError(f"problem {self.name!r} has {len(self.parts)} parts; use .parts")
        return self.parts[0].a

    @property
    def x_is_sparse(self) -> bool:
        return sp.issparse(self.x)

    def x_part(self, part: Part):
        if part.x_cols.size == self.c and part.x_cols[0] == 0 and \
                (np.diff(part.x_cols) == 1).all():
            return self.x   # the whole of X: no copy (and a stable identity for caches)
        return self.x[:, part.x_cols]

    def w_part(self, part: Part) -> np.ndarray:
        return self.w[np.ix_(part.x_cols, part.y_cols)]

    def summary(self) -> dict:
        nnz_a = int(sum(p.a.nnz for p in self.parts))
        nnz_x = int(self.x.nnz) if self.x_is_sparse else int(np.count_nonzero(self.x))
        return {"name": self.name, "o": self.o, "n": self.n, "c": self.c, "h": self.h,
                "parts": len(self.parts), "nnz_a": nnz_a, "nnz_x": nnz_x,
                "x_sparse": self.x_is_sparse, "gather": self.gather is not None,
                "contract": self.contract.to_json()}


def make_problem(a, x, w, contract: Contract, name: str = "problem", *, parts=None,
                 gather: GatherSpec | None = None, meta: dict | None = None,
                 names=("A", "X", "W"), x_sparse: bool | None = None) -> Problem:
    """Validate operands (any integer-valued dtype) and build a Problem.

    ``parts`` is an optional list of ``(a_p, x_cols, y_cols)``; without it the whole of
    ``a`` applies to all columns.  ``x_sparse`` forces X's storage; by default X stays
    sparse when given sparse or when at most a quarter of it is nonzero.
    """
    fmt = contract.operand
    xd = as_int_sparse(x, names[1], fmt) if sp.issparse(x) else as_int_dense(x, names[1], fmt)
    wd = as_int_dense(w, names[2], fmt)
    n, c = xd.shape
    if wd.shape[0] != c:
        raise ShapeError(f"{names[1]} has {c} columns but {names[2]} has {wd.shape[0]} rows "
                         f"(shapes {xd.shape} and {wd.shape})")
    h = wd.shape[1]
    if n == 0 or c == 0 or h == 0:
        raise ShapeError(f"empty operand: X {xd.shape}, W {wd.shape}")
    if x_sparse is None:
        x_sparse = sp.issparse(xd) or np.count_nonzero(xd) <= 0.25 * xd.size
    if x_sparse and not sp.issparse(xd):
        xd = sp.csr_matrix(xd)
    elif not x_sparse and sp.issparse(xd):
        xd = xd.toarray()
    if parts is None:
        parts = [(a, None, None)]
    built = []
    covered = np.zeros(h, dtype=np.int64)
    o = None
    for i, (ap, xc, yc) in enumerate(parts):
        what = names[0] if len(parts) == 1 else f"{names[0]}[{i}]"
        am = as_int_sparse(ap, what, fmt)
        if am.shape[1] != n:
            raise ShapeError(f"{what} has {am.shape[1]} columns but {names[1]} has {n} rows "
                             f"(shapes {am.shape} and {xd.shape})")
        if am.shape[0] == 0:
            raise ShapeError(f"{what} has no rows")
        if o is None:
            o = am.shape[0]
        elif am.shape[0] != o:
            raise ShapeError(f"{what} has {am.shape[0]} rows, part 0 has {o}")
        xc = np.arange(c, dtype=np.int64) if xc is None else np.asarray(xc, dtype=np.int64)
        yc = np.arange(h, dtype=np.int64) if yc is None else np.asarray(yc, dtype=np.int64)
        if xc.size == 0 or yc.size == 0 or xc.min() < 0 or xc.max() >= c or yc.min() < 0 \
                or yc.max() >= h:
            raise ShapeError(f"part {i}: column selection out of range")
        covered[yc] += 1
        built.append(Part(am, xc, yc))
    if not (covered == 1).all():
        j = int(np.argmax(covered != 1))
        raise ShapeError(f"output column {j} is covered by {int(covered[j])} parts (must be 1)")
    if gather is not None:
        t, p, ch = gather.taps, gather.pixels, gather.channels
        if n != t * p or c != t * ch:
            raise ShapeError(f"gather spec {gather} does not match X shape {xd.shape}")
    return Problem(name, xd, wd, contract, tuple(built), gather, dict(meta or {}))
