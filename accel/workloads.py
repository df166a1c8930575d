"""Builders that express GCN, GAT, convolutions and generic products as integer Problems Y = A·X·W.

Every builder returns :class:`~accel.problem.Problem` operands in the contract's operand
format; the default contract is ``make_contract('exact', operand_bits=8, acc_bits=32)``.
Float inputs are quantized with :func:`quantize_symmetric` and the builder reports, in
``Problem.meta['quant_rel_error']``, the Frobenius relative error of the dequantized
integer result (computed by :func:`accel.reference.reference`, wraps included) against
the float computation.  The bit-exact claims of AXW are about the integers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from .contract import Contract, IntFormat, Requant, make_contract
from .errors import ShapeError, WorkloadError
from .loaders import density_matched_features, load_planetoid, sorted_unique
from .problem import GatherSpec, Problem, as_int_dense, as_int_sparse, make_problem
from .reference import reference

__all__ = [
    "default_contract", "gcn_normalize", "quantize_symmetric", "host_requantize",
    "gcn_layer", "GcnModel", "gcn_model", "gat_layer", "conv2d", "conv_transpose2d",
    "per_kernel", "generic", "power_law_graph", "binary_features", "cora_like", "scale_graph",
    "ConvShape", "RESNET18_LAYERS", "RESNET18_CONV2_X_NOPAD", "conv_from_shape",
    "WORKLOADS", "DEFAULT_WORKLOAD", "get_workload",
]


# --------------------------------------------------------------------------- helpers

def default_contract(operand_bits: int | None = None, contract: Contract | None = None) -> Contract:
    """``contract`` if given (its operand width must agree with ``operand_bits`` if both are
    given), else ``make_contract('exact', operand_bits or 8, 32)``."""
    if contract is not None:
        if operand_bits is not None and contract.operand.bits != operand_bits:
            raise WorkloadError(f"operand_bits={operand_bits!r} disagrees with contract "
                                f"{contract.name!r} operands {contract.operand.name}")
        return contract
    bits = 8 if operand_bits is None else operand_bits
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool) or not 2 <= bits <= 32:
        raise WorkloadError(f"operand_bits must be an integer in 2..32, got {operand_bits!r}")
    return make_contract("exact", int(bits), 32)


def _check_count(v, what: str, minimum: int = 1) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
        raise WorkloadError(f"{what} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _round_half_away(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def quantize_symmetric(m, bits: int, *, pow2: bool = True):
    """Quantize a float array or sparse matrix to signed ``bits``-bit integers.

    Returns ``(q, scale)`` with ``m ≈ q · scale``.  ``q`` is int64 (a CSR with the same
    pattern, quantized-to-zero entries dropped, when ``m`` is sparse).  The range is
    symmetric, ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``; values are rounded half away from
    zero and saturated.  With ``pow2`` the scale is the smallest power of two for which
    ``max|m| / scale`` fits the range (so nothing saturates and rescaling is a shift);
    otherwise ``scale = max|m| / (2**(bits-1) - 1)``.  An all-zero ``m`` gets scale 1.
    """
    bits = _check_count(bits, "quantization bits", 2)
    qmax = (1 << (bits - 1)) - 1
    data = m.data if sp.issparse(m) else np.asarray(m)
    data = np.asarray(data, dtype=np.float64)
    if data.size and not np.isfinite(data).all():
        raise WorkloadError("cannot quantize: matrix holds NaN or infinite values")
    amax = float(np.abs(data).max()) if data.size else 0.0
    if amax == 0.0:
        scale = 1.0
    elif pow2:
        scale = 2.0 ** math.ceil(math.log2(amax / qmax))
        if amax / scale > qmax:  # guard against log2 rounding
            scale *= 2.0
    else:
        scale = amax / qmax
    q = np.clip(_round_half_away(data / scale), -qmax, qmax).astype(np.int64)
    if sp.issparse(m):
        c = sp.csr_matrix(m)
        out = sp.csr_matrix((q, c.indices.copy(), c.indptr.copy()), shape=c.shape)
        out.eliminate_zeros()
        return out, scale
    return q, scale


def _is_int_in(m, fmt: IntFormat) -> bool:
    data = np.asarray(m.data if sp.issparse(m) else m)
    if data.dtype.kind not in "biuf":
        raise WorkloadError(f"operand dtype {data.dtype} is not numeric")
    if data.size == 0:
        return True
    if data.dtype.kind == "f" and (not np.isfinite(data).all() or (data != np.round(data)).any()):
        return False
    return bool(data.min() >= fmt.min and data.max() <= fmt.max)


def _operand(m, fmt: IntFormat):
    """(integer operand, scale, float value): integer-valued input in the format is used
    as is with scale 1; anything else is quantized with :func:`quantize_symmetric`."""
    if sp.issparse(m):
        mf = sp.csr_matrix(m, dtype=np.float64)
    else:
        mf = np.asarray(m, dtype=np.float64)
    if _is_int_in(m, fmt):
        q = sp.csr_matrix(mf, dtype=np.int64) if sp.issparse(mf) else mf.astype(np.int64)
        return q, 1.0, mf
    q, s = quantize_symmetric(mf, fmt.bits)
    return q, s, mf


def _contract_scale(contract: Contract) -> float:
    """Factor the contract's requantization shifts put on the value of Y."""
    s = 0
    for r in (contract.mid, contract.out):
        if r is not None:
            s += r.shift
    return float(2 ** s)


def _rel_error(y_float: np.ndarray, y_deq: np.ndarray) -> float:
    den = float(np.linalg.norm(y_float))
    num = float(np.linalg.norm(y_float - y_deq))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def _glorot(rng: np.random.Generator, c: int, h: int) -> np.ndarray:
    lim = math.sqrt(6.0 / (c + h))
    return rng.uniform(-lim, lim, size=(c, h))


def _dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def _float_product(a_float, x_float, w_float) -> np.ndarray:
    xw = x_float @ w_float
    return np.asarray(a_float @ _dense(xw), dtype=np.float64)


def _graph_problem(name, a_q, a_s, a_f, x_q, x_s, x_f, w_q, w_s, w_f, contract, meta) -> Problem:
    """Problem A·X·W plus honest quantization bookkeeping in meta."""
    prob = make_problem(a_q, x_q, w_q, contract, name, meta=meta)
    y_scale = a_s * x_s * w_s * _contract_scale(contract)
    y_float = _float_product(a_f, x_f, w_f)
    y_int = reference(prob)
    prob.meta.update({"a_scale": a_s, "x_scale": x_s, "w_scale": w_s, "y_scale": y_scale,
                      "quant_rel_error": _rel_error(y_float, y_int * y_scale)})
    return prob


# --------------------------------------------------------------------------- graphs

def _check_graph(adj) -> sp.csr_matrix:
    if not sp.issparse(adj):
        adj = np.asarray(adj)
        if adj.ndim != 2:
            raise ShapeError(f"adjacency must be 2-D, got shape {adj.shape}")
    g = sp.csr_matrix(adj)
    n, n2 = g.shape
    if n != n2:
        raise ShapeError(f"adjacency must be square, got shape {g.shape}")
    g.sum_duplicates()
    g.eliminate_zeros()
    g.sort_indices()
    if g.nnz and not (g.data == 1).all():
        i = int(np.argmax(g.data != 1))
        raise WorkloadError(f"adjacency must be 0/1, found value {g.data[i].item()!r}")
    rows = np.repeat(np.arange(n), np.diff(g.indptr))
    loops = rows == g.indices
    if loops.any():
        raise WorkloadError(f"adjacency has a self-loop at node {int(rows[np.argmax(loops)])}; "
                            f"the builder adds I itself")
    gt = g.T.tocsr()
    gt.sort_indices()
    if not (np.array_equal(gt.indptr, g.indptr) and np.array_equal(gt.indices, g.indices)):
        diff = abs(g - gt).tocoo()
        raise WorkloadError(f"adjacency is not symmetric, e.g. entry ({int(diff.row[0])}, "
                            f"{int(diff.col[0])})")
    return g


def _with_self_loops(g: sp.csr_matrix) -> sp.csr_matrix:
    gi = (g + sp.identity(g.shape[0], dtype=np.float64, format="csr")).tocsr()
    gi.sum_duplicates()
    gi.sort_indices()
    return gi


def gcn_normalize(adj) -> sp.csr_matrix:
    """Float64 CSR ``Â = D^-1/2 (G + I) D^-1/2`` of a symmetric 0/1 graph G without
    self-loops (D the degrees of G + I); raises WorkloadError/ShapeError otherwise."""
    gi = _with_self_loops(_check_graph(adj))
    deg = np.diff(gi.indptr).astype(np.float64)
    dinv = 1.0 / np.sqrt(deg)
    rows = np.repeat(np.arange(gi.shape[0]), np.diff(gi.indptr))
    return sp.csr_matrix((dinv[rows] * dinv[gi.indices], gi.indices, gi.indptr), shape=gi.shape)


def host_requantize(y, fmt: IntFormat) -> tuple[np.ndarray, int]:
    """ReLU then the smallest right shift (round half up, saturate: the contract's
    :class:`Requant` rule) that brings the largest value into ``fmt``; returns (x, shift).

    This is the host-side step between two chained layers; the accelerator does not run it.
    """
    h = np.maximum(np.asarray(y, dtype=np.int64), 0)
    peak = int(h.max()) if h.size else 0
    shift = 0
    while shift < 62 and ((peak + ((1 << shift) >> 1)) >> shift) > fmt.max:
        shift += 1
    return Requant(shift, fmt).apply(h), shift


@dataclass(frozen=True, eq=False)
class GcnModel:
    """A 2-layer GCN ``Â·relu(Â·X·W1)·W2`` as two chained integer problems.

    Operands are stored quantized (``*_scale`` gives their float value) next to the float
    originals used to measure quantization error.  :meth:`layer1` is the first Problem;
    :meth:`layer2` takes layer 1's integer output (from any level: all agree bit for bit),
    applies ReLU and requantizes it to the operand format on the host
    (:func:`host_requantize`), and returns the second Problem.
    """

    name: str
    contract: Contract
    a_hat: sp.csr_matrix
    a: sp.csr_matrix
    a_scale: float
    x: np.ndarray | sp.csr_matrix
    x_scale: float
    x_float: np.ndarray | sp.csr_matrix
    w1: np.ndarray
    w1_scale: float
    w1_float: np.ndarray
    w2: np.ndarray
    w2_scale: float
    w2_float: np.ndarray

    @property
    def hidden(self) -> int:
        return self.w1.shape[1]

    @property
    def classes(self) -> int:
        return self.w2.shape[1]

    def layer1(self) -> Problem:
        return _graph_problem(f"{self.name}-layer1", self.a, self.a_scale, self.a_hat, self.x,
                              self.x_scale, self.x_float, self.w1, self.w1_scale, self.w1_float,
                              self.contract, {"kind": "gcn", "layer": 1})

    def layer2(self, y1) -> Problem:
        y1 = np.asarray(y1)
        want = (self.a.shape[0], self.hidden)
        if y1.shape != want:
            raise ShapeError(f"layer-1 output must have shape {want}, got {y1.shape}")
        if y1.dtype.kind not in "iu":
            raise WorkloadError(f"layer-1 output must be integers, got dtype {y1.dtype}")
        x2, shift = host_requantize(y1, self.contract.operand)
        y1_scale = self.a_scale * self.x_scale * self.w1_scale * _contract_scale(self.contract)
        x2_scale = y1_scale * float(2 ** shift)
        x2_float = np.maximum(_float_product(self.a_hat, self.x_float, self.w1_float), 0.0)
        return _graph_problem(f"{self.name}-layer2", self.a, self.a_scale, self.a_hat, x2, x2_scale,
                              x2_float, self.w2, self.w2_scale, self.w2_float, self.contract,
                              {"kind": "gcn", "layer": 2, "x_requant_shift": shift,
                               "host_step": "relu + round-half-up shift + saturate"})


def gcn_model(adj, x, hidden: int = 16, classes: int = 7, seed: int = 0, *,
              operand_bits: int | None = None, contract: Contract | None = None,
              name: str = "gcn") -> GcnModel:
    """Quantized 2-layer GCN on graph ``adj`` (symmetric 0/1, no self-loops) and features
    ``x``; W1 (c × hidden) and W2 (hidden × classes) are seeded Glorot-uniform floats."""
    contract = default_contract(operand_bits, contract)
    hidden = _check_count(hidden, "hidden")
    classes = _check_count(classes, "classes")
    a_hat = gcn_normalize(adj)
    n = a_hat.shape[0]
    xq, xs, xf = _checked_x(x, n, contract.operand)
    rng = np.random.default_rng(seed)
    w1f = _glorot(rng, xq.shape[1], hidden)
    w2f = _glorot(rng, hidden, classes)
    w1q, w1s = quantize_symmetric(w1f, contract.operand.bits)
    w2q, w2s = quantize_symmetric(w2f, contract.operand.bits)
    aq, as_ = quantize_symmetric(a_hat, contract.operand.bits)
    return GcnModel(name, contract, a_hat, aq, as_, xq, xs, xf, w1q, w1s, w1f, w2q, w2s, w2f)


def _checked_x(x, n: int, fmt: IntFormat):
    if not sp.issparse(x):
        x = np.asarray(x)
        if x.ndim != 2:
            raise ShapeError(f"features X must be 2-D, got shape {x.shape}")
    if x.shape[0] != n:
        raise ShapeError(f"features X have {x.shape[0]} rows but the graph has {n} nodes")
    if x.shape[1] == 0:
        raise ShapeError(f"features X have no columns (shape {x.shape})")
    return _operand(x, fmt)


def _weights(w, c: int, hidden: int, rng, fmt: IntFormat):
    if w is None:
        return _operand_float(_glorot(rng, c, _check_count(hidden, "hidden")), fmt)
    w = np.asarray(w)
    if w.ndim != 2 or w.shape[0] != c:
        raise ShapeError(f"W must have shape ({c}, h), got {w.shape}")
    return _operand(w, fmt)


def _operand_float(wf: np.ndarray, fmt: IntFormat):
    q, s = quantize_symmetric(wf, fmt.bits)
    return q, s, wf


def gcn_layer(adj, x, w=None, *, hidden: int = 16, seed: int = 0,
              operand_bits: int | None = None, contract: Contract | None = None,
              name: str = "gcn") -> Problem:
    """One GCN layer ``Â·X·W`` with A = Â quantized by :func:`quantize_symmetric`
    (power-of-two scale, no saturation), X used as is when integer-valued in the operand
    format (binary features) and quantized otherwise, W as given (same rule) or seeded
    Glorot-uniform floats (c × hidden) quantized.  meta: scales and ``quant_rel_error``."""
    contract = default_contract(operand_bits, contract)
    fmt = contract.operand
    a_hat = gcn_normalize(adj)
    xq, xs, xf = _checked_x(x, a_hat.shape[0], fmt)
    wq, ws, wf = _weights(w, xq.shape[1], hidden, np.random.default_rng(seed), fmt)
    aq, as_ = quantize_symmetric(a_hat, fmt.bits)
    return _graph_problem(name, aq, as_, a_hat, xq, xs, xf, wq, ws, wf, contract,
                          {"kind": "gcn", "layer": 1})


def _row_softmax(pattern: sp.csr_matrix, scores: np.ndarray) -> np.ndarray:
    starts = pattern.indptr[:-1]
    counts = np.diff(pattern.indptr)
    peak = np.maximum.reduceat(scores, starts)
    e = np.exp(scores - np.repeat(peak, counts))
    return e / np.repeat(np.add.reduceat(e, starts), counts)


def gat_layer(adj, x, w=None, attention=None, seed: int = 0, *, hidden: int = 16,
              operand_bits: int | None = None, contract: Contract | None = None,
              name: str = "gat") -> Problem:
    """A GAT-like layer: A has the pattern of G + I and each row holds attention weights
    summing to 1, then is quantized like GCN's Â.

    ``attention`` is a sparse matrix with exactly that pattern, nonnegative, rows summing
    to 1; without it, seeded standard-normal scores are softmaxed per row.  X and W follow
    :func:`gcn_layer`.  meta: scales and ``quant_rel_error``.
    """
    contract = default_contract(operand_bits, contract)
    fmt = contract.operand
    gi = _with_self_loops(_check_graph(adj))
    n = gi.shape[0]
    rng = np.random.default_rng(seed)
    if attention is None:
        weights = _row_softmax(gi, rng.standard_normal(gi.nnz))
    else:
        if not sp.issparse(attention):
            raise WorkloadError(f"attention must be a scipy.sparse matrix, got {type(attention).__name__}")
        att = sp.csr_matrix(attention, dtype=np.float64)
        if att.shape != gi.shape:
            raise ShapeError(f"attention has shape {att.shape}, graph {gi.shape}")
        att.sum_duplicates()
        att.sort_indices()
        if not (np.array_equal(att.indptr, gi.indptr) and np.array_equal(att.indices, gi.indices)):
            raise WorkloadError("attention pattern differs from the pattern of G + I")
        weights = att.data
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise WorkloadError("attention weights must be finite and nonnegative")
        sums = np.add.reduceat(weights, gi.indptr[:-1])
        bad = np.abs(sums - 1.0) > 1e-6
        if bad.any():
            r = int(np.argmax(bad))
            raise WorkloadError(f"attention row {r} sums to {sums[r]:.9g}, not 1 (tolerance 1e-6)")
    a_f = sp.csr_matrix((weights, gi.indices, gi.indptr), shape=(n, n))
    xq, xs, xf = _checked_x(x, n, fmt)
    wq, ws, wf = _weights(w, xq.shape[1], hidden, rng, fmt)
    aq, as_ = quantize_symmetric(a_f, fmt.bits)
    prob = _graph_problem(name, aq, as_, a_f, xq, xs, xf, wq, ws, wf, contract, {"kind": "gat"})
    prob.meta["attention_row_sum_max_dev"] = float(
        np.abs(np.add.reduceat(weights, gi.indptr[:-1]) - 1.0).max())
    return prob


# --------------------------------------------------------------------------- convolutions

def _pair(v, what: str, minimum: int) -> tuple[int, int]:
    vals = (v, v) if not isinstance(v, (tuple, list)) else tuple(v)
    if len(vals) != 2 or not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool)
                                 for e in vals):
        raise WorkloadError(f"{what} must be an int or a pair of ints, got {v!r}")
    if min(vals) < minimum:
        raise WorkloadError(f"{what} must be >= {minimum}, got {v!r}")
    return int(vals[0]), int(vals[1])


def _conv_operands(image, kernel, groups, contract, transposed: bool):
    fmt = contract.operand
    img = as_int_dense(image, "image", fmt, ndim=3)
    ker = as_int_dense(kernel, "kernel", fmt, ndim=4)
    groups = _check_count(groups, "groups")
    H, W, C = img.shape
    KH, KW, KC, KF = ker.shape
    if min(H, W, C) == 0:
        raise ShapeError(f"image has an empty dimension: shape {img.shape}")
    if min(KH, KW, KC, KF) == 0:
        raise ShapeError(f"kernel has an empty dimension: shape {ker.shape}")
    if C % groups:
        raise WorkloadError(f"groups={groups} does not divide the image's {C} channels")
    if transposed:
        if KC != C:
            raise ShapeError(f"kernel {ker.shape} must have C={C} input channels in axis 2")
        F = KF * groups
    else:
        if KC * groups != C:
            raise ShapeError(f"kernel {ker.shape} has {KC} channels per group but the image has "
                             f"C={C} with groups={groups} (needs {C // groups})")
        if KF % groups:
            raise WorkloadError(f"groups={groups} does not divide the kernel's {KF} filters")
        F = KF
    return img, ker, groups, F


def _gather_matrix(iy, vy, ix, vx, H, W, KH, KW, OH, OW) -> sp.csr_matrix:
    """A (OH·OW) × (T·H·W) 0/1 gather; iy/vy are (KH, OH) input rows and validity, ix/vx
    (KW, OW).  Entries are generated in (oy, ox, ky, kx) order, i.e. sorted CSR order."""
    P = H * W
    t = (np.arange(KH)[:, None] * KW + np.arange(KW)[None, :])          # (KH, KW)
    # (OH, OW, KH, KW) arrays
    iy4 = iy.T[:, None, :, None]
    ix4 = ix.T[None, :, None, :]
    valid = vy.T[:, None, :, None] & vx.T[None, :, None, :]
    cols = t[None, None] * P + iy4 * W + ix4
    valid = np.broadcast_to(valid, cols.shape)
    rows = np.broadcast_to(np.arange(OH * OW).reshape(OH, OW, 1, 1), cols.shape)
    cols = cols[valid]
    rows = rows[valid]
    indptr = np.zeros(OH * OW + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=OH * OW), out=indptr[1:])
    return sp.csr_matrix((np.ones(cols.size, dtype=np.int64), cols.astype(np.int64), indptr),
                         shape=(OH * OW, KH * KW * P))


def _block_diag_image(img: np.ndarray, T: int) -> sp.csr_matrix:
    """(T·P) × (T·C) CSR with T copies of the P × C image on the diagonal."""
    H, W, C = img.shape
    P = H * W
    flat = img.reshape(P, C)
    pr, pc = np.nonzero(flat)
    vals = flat[pr, pc]
    nnz = pc.size
    # copy t: rows t·P.., columns t·C + pc, entries at offset t·nnz
    ptr1 = np.zeros(P + 1, dtype=np.int64)
    np.cumsum(np.bincount(pr, minlength=P), out=ptr1[1:])
    t = np.arange(T, dtype=np.int64)[:, None]
    indptr = np.empty(T * P + 1, dtype=np.int64)
    indptr[:-1] = (ptr1[:-1][None, :] + t * nnz).ravel()
    indptr[-1] = T * nnz
    cols = (t * C + pc[None, :]).ravel()
    return sp.csr_matrix((np.tile(vals, T), cols, indptr), shape=(T * P, T * C))


def _conv_problem(name, a, img, wfull, T, groups, F, contract, meta) -> Problem:
    H, W, C = img.shape
    x = _block_diag_image(img, T)
    parts = None
    if groups > 1:
        cg, fg = C // groups, F // groups
        tc = (np.arange(T) * C)[:, None]
        parts = [(a, (tc + g * cg + np.arange(cg)[None, :]).ravel(),
                  np.arange(g * fg, (g + 1) * fg)) for g in range(groups)]
    return make_problem(a, x, wfull.reshape(T * C, F), contract, name, parts=parts,
                        gather=GatherSpec(taps=T, pixels=H * W, channels=C), meta=meta)


def conv2d(image, kernel, stride=1, padding=0, dilation=1, groups: int = 1, *,
           operand_bits: int | None = None, contract: Contract | None = None,
           name: str = "conv2d") -> Problem:
    """Cross-correlation with ``torch.nn.functional.conv2d`` semantics as Y = A·X·W.

    ``image`` is (H, W, C), ``kernel`` (KH, KW, C/groups, F), both integer-valued in the
    operand format; stride/padding/dilation are an int or an (y, x) pair; padding is zero
    padding; the output is OH = floor((H + 2p − d(KH−1) − 1)/s) + 1 (same for W).

    With T = KH·KW taps and P = H·W pixels: A is (OH·OW) × (T·P), row r the output pixel
    r in row-major order, with a single 1 at column t·P + p for each tap t that reads input
    pixel p (none where the tap falls into the padding); X is the (T·P) × (T·C) block
    diagonal of T copies of the image; W is the (T·C) × F stacked kernel.  With groups
    there is one Part per group (its channels in every tap block × its filters) and W is
    zero across groups.  Y's rows are output pixels, its columns output channels.
    """
    contract = default_contract(operand_bits, contract)
    sy, sx = _pair(stride, "stride", 1)
    py, px = _pair(padding, "padding", 0)
    dy, dx = _pair(dilation, "dilation", 1)
    img, ker, groups, F = _conv_operands(image, kernel, groups, contract, transposed=False)
    H, W, C = img.shape
    KH, KW = ker.shape[:2]
    OH = (H + 2 * py - dy * (KH - 1) - 1) // sy + 1
    OW = (W + 2 * px - dx * (KW - 1) - 1) // sx + 1
    if OH <= 0 or OW <= 0:
        raise ShapeError(f"conv2d output would be empty ({OH}×{OW}) for image {H}×{W}, kernel "
                         f"{KH}×{KW}, padding {(py, px)}, dilation {(dy, dx)}")
    iy = np.arange(OH)[None, :] * sy - py + np.arange(KH)[:, None] * dy
    ix = np.arange(OW)[None, :] * sx - px + np.arange(KW)[:, None] * dx
    a = _gather_matrix(iy, (iy >= 0) & (iy < H), ix, (ix >= 0) & (ix < W), H, W, KH, KW, OH, OW)
    T = KH * KW
    cg, fg = C // groups, F // groups
    wfull = np.zeros((T, C, F), dtype=np.int64)
    kr = ker.reshape(T, cg, F)
    for g in range(groups):
        wfull[:, g * cg:(g + 1) * cg, g * fg:(g + 1) * fg] = kr[:, :, g * fg:(g + 1) * fg]
    meta = {"kind": "conv2d", "out_h": OH, "out_w": OW, "stride": (sy, sx), "padding": (py, px),
            "dilation": (dy, dx), "groups": groups, "image": (H, W, C), "kernel": ker.shape}
    return _conv_problem(name, a, img, wfull, T, groups, F, contract, meta)


def conv_transpose2d(image, kernel, stride=1, padding=0, dilation=1, groups: int = 1, *,
                     operand_bits: int | None = None, contract: Contract | None = None,
                     name: str = "conv_transpose2d") -> Problem:
    """``torch.nn.functional.conv_transpose2d`` (output_padding 0) as Y = A·X·W.

    ``image`` is (H, W, C); ``kernel`` is (KH, KW, C, F/groups), i.e. torch's weight
    (C, F/groups, KH, KW) with its axes moved: ``kernel[ky, kx, c, j]`` connects input
    channel c (of group g = c // (C/groups)) to output channel g·F/groups + j.
    OH = (H − 1)s − 2p + d(KH − 1) + 1 and
    ``out[oy, ox, f] = Σ x[iy, ix, c] · k[ky, kx, c, f]`` over ``oy = iy·s − p + ky·d``.
    A (OH·OW) × (T·P) gathers, for each output pixel and tap, the single input pixel with
    ``oy + p − ky·d`` divisible by s and in range (if any); X, W and Parts as in
    :func:`conv2d`.  The number of output pixels may exceed the number of input pixels.
    """
    contract = default_contract(operand_bits, contract)
    sy, sx = _pair(stride, "stride", 1)
    py, px = _pair(padding, "padding", 0)
    dy, dx = _pair(dilation, "dilation", 1)
    img, ker, groups, F = _conv_operands(image, kernel, groups, contract, transposed=True)
    H, W, C = img.shape
    KH, KW = ker.shape[:2]
    OH = (H - 1) * sy - 2 * py + dy * (KH - 1) + 1
    OW = (W - 1) * sx - 2 * px + dx * (KW - 1) + 1
    if OH <= 0 or OW <= 0:
        raise ShapeError(f"conv_transpose2d output would be empty ({OH}×{OW}) for image {H}×{W}, "
                         f"kernel {KH}×{KW}, stride {(sy, sx)}, padding {(py, px)}")
    ny = np.arange(OH)[None, :] + py - np.arange(KH)[:, None] * dy
    nx = np.arange(OW)[None, :] + px - np.arange(KW)[:, None] * dx
    iy, ry = np.divmod(ny, sy)
    ix, rx = np.divmod(nx, sx)
    vy = (ry == 0) & (iy >= 0) & (iy < H)
    vx = (rx == 0) & (ix >= 0) & (ix < W)
    a = _gather_matrix(iy, vy, ix, vx, H, W, KH, KW, OH, OW)
    T = KH * KW
    cg, fg = C // groups, F // groups
    wfull = np.zeros((T, C, F), dtype=np.int64)
    kr = ker.reshape(T, C, fg)
    for g in range(groups):
        wfull[:, g * cg:(g + 1) * cg, g * fg:(g + 1) * fg] = kr[:, g * cg:(g + 1) * cg, :]
    meta = {"kind": "conv_transpose2d", "out_h": OH, "out_w": OW, "stride": (sy, sx),
            "padding": (py, px), "dilation": (dy, dx), "groups": groups, "image": (H, W, C),
            "kernel": ker.shape}
    return _conv_problem(name, a, img, wfull, T, groups, F, contract, meta)


# --------------------------------------------------------------------------- generic forms

def per_kernel(a_list, x, w, *, operand_bits: int | None = None,
               contract: Contract | None = None, name: str = "per_kernel") -> Problem:
    """``Y[:, i] = A_i · X · w_i`` for the columns w_i of W, one A_i per column.

    Columns whose A_i are identical (same shape, pattern and integer values) share one
    Part (all of X's columns, the group's Y columns), in order of first appearance.
    meta['groups'] is the number of Parts.
    """
    contract = default_contract(operand_bits, contract)
    fmt = contract.operand
    wd = as_int_dense(w, "W", fmt)
    a_list = list(a_list)
    if len(a_list) != wd.shape[1]:
        raise ShapeError(f"per_kernel needs one A per column of W: got {len(a_list)} A for "
                         f"{wd.shape[1]} columns")
    groups: dict[tuple, list[int]] = {}
    mats: dict[tuple, sp.csr_matrix] = {}
    for i, ai in enumerate(a_list):
        m = as_int_sparse(ai, f"A_{i}", fmt)
        key = (m.shape, m.indptr.tobytes(), m.indices.tobytes(), m.data.tobytes())
        groups.setdefault(key, []).append(i)
        mats.setdefault(key, m)
    parts = [(mats[k], None, np.asarray(cols, dtype=np.int64)) for k, cols in groups.items()]
    return make_problem(None, x, wd, contract, name, parts=parts,
                        meta={"kind": "per_kernel", "groups": len(parts)})


def generic(a, x, w, contract: Contract | None = None, name: str = "generic", **kwargs) -> Problem:
    """Any integer-valued A (sparse or dense), X and W: :func:`make_problem` with the
    default contract; ``kwargs`` go to make_problem (parts, meta, x_sparse...)."""
    return make_problem(a, x, w, default_contract(None, contract), name, **kwargs)


# --------------------------------------------------------------------------- generators

def _sample_endpoints(rng, p: np.ndarray, k: int) -> np.ndarray:
    """k i.i.d. node draws with probabilities p, in random order (multinomial counts avoid
    a slow unsorted searchsorted)."""
    return rng.permutation(np.repeat(np.arange(p.size, dtype=np.int64), rng.multinomial(k, p)))


def _pair_keys(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    keep = u != v
    u, v = u[keep], v[keep]
    return sorted_unique(np.minimum(u, v) * n + np.maximum(u, v))


def _drop_members(a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    if sorted_b.size == 0 or a.size == 0:
        return a
    pos = np.minimum(np.searchsorted(sorted_b, a), sorted_b.size - 1)
    return a[sorted_b[pos] != a]


def power_law_graph(nodes: int, edges: int, *, exponent: float = 2.5, seed: int = 0) -> sp.csr_matrix:
    """A symmetric 0/1 float32 CSR graph without self-loops and with exactly
    ``2·(edges // 2)`` stored entries (``edges`` counts directed entries).

    Chung–Lu: node i has weight (i + 1)^(−1/(exponent − 1)), giving a degree tail of the
    given exponent.  When ``edges >= 2·nodes`` every node first gets one edge to a partner
    drawn by weight (so no node is isolated, as in Cora); the remaining pairs are drawn with
    probability proportional to the product of weights, self-pairs dropped, duplicates
    removed by sorting, rounds repeated until enough distinct pairs exist, and a random
    subset of the exact size kept.  Node labels are randomly permuted so hubs are not
    clustered at low indices.
    """
    n = _check_count(nodes, "nodes")
    e = _check_count(edges, "edges", 0)
    if isinstance(exponent, bool) or not (isinstance(exponent, (int, float)) and exponent > 1.0):
        raise WorkloadError(f"power-law exponent must be > 1, got {exponent!r}")
    pairs_max = n * (n - 1) // 2
    want = e // 2
    if want > pairs_max:
        raise WorkloadError(f"edges={edges} exceeds the {2 * pairs_max} directed entries of a "
                            f"simple graph on {n} nodes")
    rng = np.random.default_rng(seed)
    wt = np.arange(1, n + 1, dtype=np.float64) ** (-1.0 / (exponent - 1.0))
    p = wt / wt.sum()
    if want * 4 >= pairs_max:
        # Dense request: draw distinct pairs directly, weighted by the product of weights.
        lo, hi = np.triu_indices(n, 1)
        pw = wt[lo] * wt[hi]
        pick = np.sort(rng.choice(lo.size, size=want, replace=False, p=pw / pw.sum()))
        keys = lo[pick].astype(np.int64) * n + hi[pick]
    else:
        base = np.empty(0, dtype=np.int64)
        if want >= n:
            base = _pair_keys(np.arange(n, dtype=np.int64), _sample_endpoints(rng, p, n), n)
        extra = np.empty(0, dtype=np.int64)
        need = want - base.size
        for _ in range(200):
            if extra.size >= need:
                break
            k = int((need - extra.size) * 1.1) + 64
            new = _pair_keys(_sample_endpoints(rng, p, k), _sample_endpoints(rng, p, k), n)
            extra = sorted_unique(np.concatenate([extra, _drop_members(new, base)]))
        if extra.size < need:
            raise WorkloadError(f"could not draw {want} distinct edges on {n} nodes with "
                                f"exponent {exponent}")
        if extra.size > need:
            extra = extra[rng.permutation(extra.size)[:need]]
        keys = np.concatenate([base, extra])
    perm = rng.permutation(n).astype(np.int64)
    lo, hi = perm[keys // n], perm[keys % n]
    both = np.sort(np.concatenate([lo * n + hi, hi * n + lo]))
    rows, cols = np.divmod(both, n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    idx_dtype = np.int32 if n < 2 ** 31 and both.size < 2 ** 31 else np.int64
    return sp.csr_matrix((np.ones(both.size, dtype=np.float32), cols.astype(idx_dtype),
                          indptr.astype(idx_dtype)), shape=(n, n))


def binary_features(n: int, f: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """Random binary n × f CSR (float32 ones) with exactly round(n·f·density) nonzeros."""
    return density_matched_features(n, f, density, seed)


def cora_like(seed: int = 0, *, operand_bits: int | None = None,
              contract: Contract | None = None) -> GcnModel:
    """A synthetic Cora: 2708 nodes, 10556 directed entries (power law), 1433 binary
    features at 1.27 % density, hidden 16, 7 classes, as a 2-layer :class:`GcnModel`."""
    adj = power_law_graph(2708, 10556, seed=seed)
    x = binary_features(2708, 1433, 0.0127, seed + 1)
    return gcn_model(adj, x, hidden=16, classes=7, seed=seed, operand_bits=operand_bits,
                     contract=contract, name="gcn-cora-like")


def scale_graph(seed: int = 0, *, nodes: int = 1_000_000, edges: int = 10_000_000,
                features: int = 64, density: float = 0.03, hidden: int = 16, classes: int = 7,
                operand_bits: int | None = None, contract: Contract | None = None) -> GcnModel:
    """A large power-law GCN (default 1M nodes, 10M directed entries, 64 binary features
    at 3 % density) for benchmarks, as a :class:`GcnModel`."""
    adj = power_law_graph(nodes, edges, seed=seed)
    x = binary_features(nodes, features, density, seed + 1)
    return gcn_model(adj, x, hidden=hidden, classes=classes, seed=seed,
                     operand_bits=operand_bits, contract=contract, name="gcn-scale")


# --------------------------------------------------------------------------- ResNet-18

@dataclass(frozen=True)
class ConvShape:
    """One convolution layer: (h, w, c) input, kh × kw × f kernel, one stride and padding."""

    name: str
    h: int
    w: int
    c: int
    kh: int
    kw: int
    f: int
    stride: int
    padding: int

    @property
    def out_h(self) -> int:
        return (self.h + 2 * self.padding - self.kh) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.w + 2 * self.padding - self.kw) // self.stride + 1

    @property
    def macs(self) -> int:
        return self.out_h * self.out_w * self.kh * self.kw * self.c * self.f


def _resnet18() -> tuple[ConvShape, ...]:
    # He et al. 2016, Table 1 (18-layer), ImageNet 224×224; 3×3 convs use padding 1, the
    # first conv of conv3_x..conv5_x and the 1×1 projection shortcut use stride 2.
    layers = [ConvShape("conv1", 224, 224, 3, 7, 7, 64, 2, 3)]
    layers += [ConvShape(f"conv2_{b}{ab}", 56, 56, 64, 3, 3, 64, 1, 1)
               for b in (1, 2) for ab in "ab"]
    size, c = 56, 64
    for stage in (3, 4, 5):
        f = c * 2
        half = size // 2
        layers += [ConvShape(f"conv{stage}_1a", size, size, c, 3, 3, f, 2, 1),
                   ConvShape(f"conv{stage}_1b", half, half, f, 3, 3, f, 1, 1),
                   ConvShape(f"conv{stage}_ds", size, size, c, 1, 1, f, 2, 0),
                   ConvShape(f"conv{stage}_2a", half, half, f, 3, 3, f, 1, 1),
                   ConvShape(f"conv{stage}_2b", half, half, f, 3, 3, f, 1, 1)]
        size, c = half, f
    layers.append(ConvShape("fc", 1, 1, 512, 1, 1, 1000, 1, 0))
    return tuple(layers)


#: ResNet-18's 17 convolutions (conv1 and 16 3×3), 3 projection shortcuts (``*_ds``) and fc (as 1×1).
RESNET18_LAYERS: tuple[ConvShape, ...] = _resnet18()
#: Benchmark variant of conv2_x without padding (output 54×54).
RESNET18_CONV2_X_NOPAD = ConvShape("resnet18_conv2_x_nopad", 56, 56, 64, 3, 3, 64, 1, 0)


def conv_from_shape(shape: ConvShape, seed: int = 0, scale: float = 1.0, *,
                    operand_bits: int | None = None, contract: Contract | None = None) -> Problem:
    """:func:`conv2d` of ``shape`` with seeded random operands uniform over the whole
    operand format; ``scale`` in (0, 1] shrinks H, W, C and F (kept large enough for a
    nonempty output) for fast tests."""
    contract = default_contract(operand_bits, contract)
    if not (isinstance(scale, (int, float)) and 0.0 < scale <= 1.0):
        raise WorkloadError(f"scale must be in (0, 1], got {scale!r}")
    s = shape
    h = max(round(s.h * scale), s.kh - 2 * s.padding, 1)
    w = max(round(s.w * scale), s.kw - 2 * s.padding, 1)
    c = max(round(s.c * scale), 1)
    f = max(round(s.f * scale), 1)
    rng = np.random.default_rng(seed)
    fmt = contract.operand
    img = rng.integers(fmt.min, fmt.max + 1, size=(h, w, c), dtype=np.int64)
    ker = rng.integers(fmt.min, fmt.max + 1, size=(s.kh, s.kw, c, f), dtype=np.int64)
    prob = conv2d(img, ker, s.stride, s.padding, contract=contract, name=s.name)
    prob.meta.update({"shape": s.name, "scale": scale, "seed": seed})
    return prob


# --------------------------------------------------------------------------- registry

def _gcn_cora_like(seed: int = 0) -> list[Problem]:
    return [cora_like(seed).layer1()]


def _gcn_cora_like_2layer(seed: int = 0) -> list[Problem]:
    m = cora_like(seed)
    l1 = m.layer1()
    return [l1, m.layer2(reference(l1))]


def _gat_cora_like(seed: int = 0) -> list[Problem]:
    adj = power_law_graph(2708, 10556, seed=seed)
    x = binary_features(2708, 1433, 0.0127, seed + 1)
    return [gat_layer(adj, x, seed=seed, name="gat-cora-like")]


def _gcn_planetoid(ds: str) -> Callable[..., list[Problem]]:
    def build(seed: int = 0) -> list[Problem]:
        p = load_planetoid(ds)
        return [gcn_layer(p.adj, p.matched_features(seed), hidden=16, seed=seed,
                          name=f"gcn-{ds}")]
    return build


def _gcn_scale(seed: int = 0) -> list[Problem]:
    return [scale_graph(seed).layer1()]


def _conv_workload(shape: ConvShape) -> Callable[..., list[Problem]]:
    def build(seed: int = 0) -> list[Problem]:
        return [conv_from_shape(shape, seed)]
    return build


#: Named built-in workloads: ``WORKLOADS[name](seed=0) -> list[Problem]``.
#: ``gcn-cora-like`` is GCN layer 1 only (use :func:`cora_like` for the :class:`GcnModel`);
#: ``gcn-cora-like-2layer`` returns both layers, layer 2's X computed on the host from the
#: reference output of layer 1.  ``gcn-cora``/``-citeseer``/``-pubmed`` read the real
#: graphs (Pubmed with density-matched binary features).  ``resnet18-<layer>`` are full
#: size layers of :data:`RESNET18_LAYERS` with seeded random int operands.
WORKLOADS: dict[str, Callable[..., list[Problem]]] = {
    "gcn-cora-like": _gcn_cora_like,
    "gcn-cora-like-2layer": _gcn_cora_like_2layer,
    "gat-cora-like": _gat_cora_like,
    "gcn-cora": _gcn_planetoid("cora"),
    "gcn-citeseer": _gcn_planetoid("citeseer"),
    "gcn-pubmed": _gcn_planetoid("pubmed"),
    "gcn-scale": _gcn_scale,
    "resnet18-conv2_x": _conv_workload(RESNET18_LAYERS[1]),
    "resnet18-conv2_x-nopad": _conv_workload(RESNET18_CONV2_X_NOPAD),
    **{f"resnet18-{s.name}": _conv_workload(s) for s in RESNET18_LAYERS},
}
DEFAULT_WORKLOAD = "gcn-cora-like"


def get_workload(name: str = DEFAULT_WORKLOAD, seed: int = 0) -> list[Problem]:
    """Build the named workload; WorkloadError listing the known names if unknown."""
    if name not in WORKLOADS:
        raise WorkloadError(f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}")
    return WORKLOADS[name](seed=seed)
