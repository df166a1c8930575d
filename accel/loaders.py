"""Readers for the real data sets in ``shared/data`` (graphs, features, CNN layer tables), without pickle."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io as sio
import scipy.sparse as sp

from .errors import InputFileError, WorkloadError

__all__ = [
    "data_dir", "require_data", "load_matrix", "Planetoid", "PLANETOID_NAMES", "load_planetoid",
    "density_matched_features", "ConvLayer", "CNN_TABLES", "load_cnn_table", "OTHER_NAMES",
    "load_other", "sorted_unique",
]

#: Environment variable that overrides the data folder.
DATA_ENV = "AXW_DATA_DIR"
PLANETOID_NAMES = ("cora", "citeseer", "pubmed")
CNN_TABLES = ("Resnet18", "Resnet50", "alexnet", "mobilenet", "Googlenet", "yolo_tiny")
OTHER_NAMES = ("karate", "bcsstk13", "as20graph")
_OTHER_FILES = {"karate": "other/karate.mtx", "bcsstk13": "other/bcsstk13.mtx.gz",
                "as20graph": "other/as20graph_adj.npz"}
# Keys written by scipy.sparse.save_npz; a numpy .npz holding these is read as a sparse matrix.
_SPARSE_NPZ_KEYS = {"format", "shape", "data"}


def data_dir() -> Path:
    """The data folder: ``$AXW_DATA_DIR`` if set, else ``<repo root>/../shared/data``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require_data(relpath: str | os.PathLike) -> Path:
    """Absolute path of ``relpath`` inside :func:`data_dir`; InputFileError if it is missing."""
    path = data_dir() / relpath
    if not path.is_file():
        raise InputFileError(f"data file {path} not found (set {DATA_ENV} to the data folder)")
    return path


def _label(path: Path, what: str | None) -> str:
    return f"{what} file {path}" if what else f"file {path}"


def _check_numeric(arr: np.ndarray, path: Path, what: str | None) -> None:
    if arr.dtype.kind not in "biuf":
        raise InputFileError(f"{_label(path, what)}: dtype {arr.dtype} is not numeric")


def _load_npz(path: Path, what: str | None):
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        if _SPARSE_NPZ_KEYS <= keys:
            m = sp.load_npz(path)
            _check_numeric(m.data, path, what)
            return sp.csr_matrix(m)
        if len(keys) != 1:
            raise InputFileError(f"{_label(path, what)}: expected one array or a scipy sparse "
                                 f"matrix, found arrays {sorted(keys)}")
        arr = z[z.files[0]]
    _check_numeric(arr, path, what)
    return arr


def load_matrix(path: str | os.PathLike, what: str | None = None):
    """Read a matrix file; sparse results are CSR, dense ones numpy arrays.

    Accepted: ``.npz`` written by ``scipy.sparse.save_npz`` (CSR), a numpy ``.npz`` holding
    exactly one array, ``.npy``, and Matrix Market ``.mtx`` / ``.mtx.gz``.  Pickled content
    is never loaded.  Any failure (missing file, unknown extension, corrupt or non-numeric
    content) raises InputFileError naming the path; ``what`` says what the file was for.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{_label(path, what)} not found")
    name = path.name.lower()
    try:
        if name.endswith(".npz"):
            return _load_npz(path, what)
        if name.endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
            _check_numeric(arr, path, what)
            return arr
        if name.endswith(".mtx") or name.endswith(".mtx.gz"):
            m = sio.mmread(str(path))
            if sp.issparse(m):
                m = sp.csr_matrix(m)
                _check_numeric(m.data, path, what)
            else:
                m = np.asarray(m)
                _check_numeric(m, path, what)
            return m
    except InputFileError:
        raise
    except Exception as e:  # corrupt files fail in many library-specific ways
        raise InputFileError(f"{_label(path, what)} could not be read: {type(e).__name__}: {e}") from e
    raise InputFileError(f"{_label(path, what)}: unknown extension (expected .npz, .npy, .mtx, .mtx.gz)")


def _load_sparse(relpath: str, what: str) -> sp.csr_matrix:
    path = require_data(relpath)
    m = load_matrix(path, what)
    if not sp.issparse(m):
        raise InputFileError(f"{_label(path, what)}: expected a sparse matrix, got a dense array")
    return m


def sorted_unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-D array (np.unique without its slower general path)."""
    a = np.sort(a, kind="stable")
    if a.size == 0:
        return a
    keep = np.empty(a.size, dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def density_matched_features(n: int, f: int, density: float, seed: int = 0) -> sp.csr_matrix:
    """A random binary ``n × f`` CSR (float32 ones) with exactly ``round(n·f·density)`` nonzeros.

    Used where real features are missing (Pubmed) to build an X with the real density.
    """
    for v, nm in ((n, "n"), (f, "f")):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
            raise WorkloadError(f"feature matrix size {nm} must be a positive integer, got {v!r}")
    if not 0.0 <= density <= 1.0:
        raise WorkloadError(f"feature density must be in [0, 1], got {density!r}")
    n, f = int(n), int(f)
    total = n * f
    k = int(round(total * density))
    rng = np.random.default_rng(seed)
    # k distinct positions, uniformly without replacement (Floyd's method inside numpy)
    flat = np.sort(rng.choice(total, size=k, replace=False, shuffle=False))
    rows, cols = np.divmod(flat, f)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sp.csr_matrix((np.ones(k, dtype=np.float32), cols, indptr), shape=(n, f))


@dataclass(frozen=True, eq=False)
class Planetoid:
    """One Planetoid citation graph: adjacency, features, labels and the standard split.

    ``features`` is None when the full X is not available (Pubmed); then
    ``features_partial`` holds the real rows that exist (nodes ``partial_node_ids``) and
    ``feature_density`` their density, so :meth:`matched_features` can build a random
    binary X of the same shape and density.
    """

    name: str
    adj: sp.csr_matrix
    features: sp.csr_matrix | None
    labels: np.ndarray
    split: dict
    num_features: int
    feature_density: float
    features_partial: sp.csr_matrix | None = None
    partial_node_ids: np.ndarray | None = None

    @property
    def nodes(self) -> int:
        return self.adj.shape[0]

    @property
    def classes(self) -> int:
        return int(self.labels.max()) + 1

    def matched_features(self, seed: int = 0) -> sp.csr_matrix:
        """The real features if complete, else a binary X with the real block's density."""
        if self.features is not None:
            return self.features
        return density_matched_features(self.nodes, self.num_features, self.feature_density, seed)


def load_planetoid(name: str) -> Planetoid:
    """Load ``cora``, ``citeseer`` or ``pubmed`` from ``planetoid/`` in :func:`data_dir`."""
    if name not in PLANETOID_NAMES:
        raise InputFileError(f"unknown Planetoid data set {name!r}; known: {', '.join(PLANETOID_NAMES)}")
    adj = _load_sparse(f"planetoid/{name}_adj.npz", f"{name} adjacency")
    n = adj.shape[0]
    if adj.shape != (n, n):
        raise InputFileError(f"{name} adjacency is not square: shape {adj.shape}")
    labels_path = require_data(f"planetoid/{name}_labels.npy")
    labels = load_matrix(labels_path, f"{name} labels")
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise InputFileError(f"{name} labels file {labels_path}: expected ({n},) integers, got "
                             f"{labels.shape} {labels.dtype}")
    split_path = require_data(f"planetoid/{name}_split.npz")
    try:
        with np.load(split_path, allow_pickle=False) as z:
            split = {k: np.asarray(z[k]) for k in ("train", "val", "test")}
    except Exception as e:
        raise InputFileError(f"{name} split file {split_path} could not be read: {e}") from e
    partial = ids = None
    if name == "pubmed":
        features = None
        partial = _load_sparse("planetoid/pubmed_features_partial.npz", "pubmed partial features")
        ids = load_matrix(require_data("planetoid/pubmed_features_partial_node_ids.npy"),
                          "pubmed partial node ids")
        if ids.shape != (partial.shape[0],):
            raise InputFileError(f"pubmed partial node ids: shape {ids.shape} does not match "
                                 f"{partial.shape[0]} feature rows")
        block = partial
    else:
        features = _load_sparse(f"planetoid/{name}_features.npz", f"{name} features")
        if features.shape[0] != n:
            raise InputFileError(f"{name} features have {features.shape[0]} rows, adjacency {n}")
        block = features
    density = block.nnz / float(block.shape[0] * block.shape[1])
    return Planetoid(name, adj, features, labels, split, int(block.shape[1]), density, partial, ids)


@dataclass(frozen=True)
class ConvLayer:
    """One row of a SCALE-Sim topology table (no padding; one stride for both axes)."""

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    filters: int
    stride: int

    @property
    def out_h(self) -> int:
        """SCALE-Sim's rule, ceil((H − R + s) / s)."""
        return -(-(self.ifmap_h - self.filter_h + self.stride) // self.stride)

    @property
    def out_w(self) -> int:
        return -(-(self.ifmap_w - self.filter_w + self.stride) // self.stride)

    @property
    def macs(self) -> int:
        return self.out_h * self.out_w * self.filter_h * self.filter_w * self.channels * self.filters


def load_cnn_table(name: str | os.PathLike) -> list[ConvLayer]:
    """Parse a SCALE-Sim ``.csv`` table: a name in ``cnn/`` (e.g. ``Resnet18``) or a path.

    Tolerates the shipped quirks: trailing commas, spaces in cells, extra columns (only
    the first 8 are used), blank lines and rows whose first cell is empty.
    """
    p = Path(name)
    if p.suffix.lower() == ".csv" and (p.is_absolute() or p.parent != Path(".")):
        path = p
        if not path.is_file():
            raise InputFileError(f"CNN table {path} not found")
    else:
        stem = p.stem if p.suffix.lower() == ".csv" else str(name)
        path = require_data(f"cnn/{stem}.csv")
    layers = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputFileError(f"CNN table {path} could not be read: {e}") from e
    header_seen = False
    for lineno, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not cells or not cells[0]:
            continue
        if not header_seen:
            header_seen = True
            continue
        cells = (cells + [""] * 8)[:8]
        nums = []
        for col, cell in enumerate(cells[1:8], start=2):
            if not cell:
                raise InputFileError(f"CNN table {path} line {lineno}: column {col} is empty "
                                     f"(expected 8 columns)")
            try:
                nums.append(int(cell))
            except ValueError as e:
                raise InputFileError(f"CNN table {path} line {lineno}: column {col} value "
                                     f"{cell!r} is not an integer") from e
        if min(nums) <= 0:
            raise InputFileError(f"CNN table {path} line {lineno}: nonpositive size in {cells[:8]}")
        layers.append(ConvLayer(cells[0], *nums))
    if not layers:
        raise InputFileError(f"CNN table {path} holds no layers")
    return layers


def load_other(name: str) -> sp.csr_matrix:
    """``karate`` (34×34 0/1), ``bcsstk13`` (2003×2003 real stiffness) or ``as20graph``
    (6474×6474 0/1), as CSR with the stored values, from ``other/`` in :func:`data_dir`."""
    if name not in _OTHER_FILES:
        raise InputFileError(f"unknown matrix {name!r}; known: {', '.join(OTHER_NAMES)}")
    m = _load_sparse(_OTHER_FILES[name], name)
    m.sum_duplicates()
    m.sort_indices()
    return m
