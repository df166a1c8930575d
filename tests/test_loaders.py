"""Tests of accel.loaders on the real data files and on deliberately malformed ones."""

import gzip
import os

import numpy as np
import pytest
import scipy.io as sio
import scipy.sparse as sp

from accel import loaders as ld
from accel.errors import InputFileError, WorkloadError


@pytest.fixture
def data():
    """The data folder; a missing folder fails under CI (CI=true) and skips elsewhere."""
    d = ld.data_dir()
    if not (d / "planetoid" / "cora_adj.npz").is_file():
        msg = f"data folder {d} missing (set {ld.DATA_ENV})"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


def assert_symmetric_01(m, n, nnz):
    assert sp.isspmatrix_csr(m) or m.format == "csr"
    assert m.shape == (n, n) and m.nnz == nnz
    assert (m != m.T).nnz == 0 and m.diagonal().sum() == 0 and (m.data == 1).all()


# ------------------------------------------------------------------ paths

def test_data_dir_default_and_env(monkeypatch, tmp_path):
    monkeypatch.delenv(ld.DATA_ENV, raising=False)
    repo = __import__("pathlib").Path(ld.__file__).resolve().parents[1]
    assert ld.data_dir() == repo.parent / "shared" / "data"
    monkeypatch.setenv(ld.DATA_ENV, str(tmp_path))
    assert ld.data_dir() == tmp_path
    (tmp_path / "x.npy").write_bytes(b"")
    assert ld.require_data("x.npy") == tmp_path / "x.npy"
    with pytest.raises(InputFileError, match="nothere.npz"):
        ld.require_data("nothere.npz")
    with pytest.raises(InputFileError, match="cora_adj.npz"):
        ld.load_planetoid("cora")


# ------------------------------------------------------------------ real files

def test_planetoid_cora(data):
    p = ld.load_planetoid("cora")
    assert_symmetric_01(p.adj, 2708, 10556)
    assert p.features.shape == (2708, 1433) and p.features.nnz == 49216
    assert p.feature_density == pytest.approx(49216 / (2708 * 1433))
    assert p.labels.shape == (2708,) and p.classes == 7
    np.testing.assert_array_equal(np.bincount(p.labels), [351, 217, 418, 818, 426, 298, 180])
    assert [p.split[k].size for k in ("train", "val", "test")] == [140, 500, 1000]
    assert p.matched_features() is p.features


def test_planetoid_citeseer(data):
    p = ld.load_planetoid("citeseer")
    assert_symmetric_01(p.adj, 3327, 9104)
    assert p.features.shape == (3327, 3703) and p.features.nnz == 105165
    assert (p.labels == -1).sum() == 15 and p.classes == 6


def test_planetoid_pubmed_partial_features(data):
    p = ld.load_planetoid("pubmed")
    assert_symmetric_01(p.adj, 19717, 88648)
    assert p.features is None and p.num_features == 500 and p.classes == 3
    assert p.features_partial.shape == (1060, 500) and p.features_partial.nnz == 52959
    assert p.partial_node_ids.shape == (1060,)
    np.testing.assert_array_equal(p.partial_node_ids[:60], np.arange(60))
    assert p.feature_density == pytest.approx(52959 / 530000)
    x = p.matched_features(seed=3)
    assert x.shape == (19717, 500)
    assert x.nnz == round(19717 * 500 * p.feature_density)
    np.testing.assert_array_equal(p.matched_features(seed=3).indices, x.indices)


def test_other_matrices(data):
    k = ld.load_other("karate")
    assert_symmetric_01(k, 34, 156)
    b = ld.load_other("bcsstk13")
    assert b.shape == (2003, 2003) and b.nnz == 83883
    assert (b != b.T).nnz == 0 and np.count_nonzero(b.diagonal()) == 2003
    a = ld.load_other("as20graph")
    assert_symmetric_01(a, 6474, 25144)
    assert np.diff(a.indptr).max() == 1458


def test_load_matrix_real_formats(data):
    m = ld.load_matrix(data / "other" / "bcsstk13.mtx.gz")
    assert m.format == "csr" and m.nnz == 83883
    ids = ld.load_matrix(data / "other" / "as20graph_node_ids.npy")
    assert ids.shape == (6474,) and ids.dtype == np.int32
    np.testing.assert_array_equal(ids[:3], [1, 2, 3])


def test_cnn_tables(data):
    r18 = ld.load_cnn_table("Resnet18")
    assert len(r18) == 21
    assert r18[0] == ld.ConvLayer("Conv1", 224, 224, 7, 7, 3, 64, 2)
    assert r18[-1] == ld.ConvLayer("FC", 1, 1, 1, 1, 512, 1000, 1)
    assert ld.load_cnn_table("Resnet18.csv") == r18
    assert ld.load_cnn_table(data / "cnn" / "Resnet18.csv") == r18
    # GMACs with SCALE-Sim's output-size rule, as listed in the data README
    want = {"Resnet18": (21, 1.471), "Resnet50": (54, 3.480), "alexnet": (5, 0.805),
            "mobilenet": (27, 0.566), "Googlenet": (58, 1.352), "yolo_tiny": (9, 1.754)}
    for name, (count, gmacs) in want.items():
        layers = ld.load_cnn_table(name)
        assert len(layers) == count, name
        assert round(sum(lay.macs for lay in layers) / 1e9, 3) == gmacs, name
    r50 = ld.load_cnn_table("Resnet50")
    assert r50[0] == ld.ConvLayer("Conv1", 224, 224, 7, 7, 3, 64, 2)      # extra notes ignored
    assert ld.load_cnn_table("alexnet")[0].name == "Conv1"                 # cells stripped
    assert ld.load_cnn_table("Resnet18")[0].out_h == 110                   # no padding


# ------------------------------------------------------------------ written files

def test_load_matrix_round_trips(tmp_path):
    m = sp.random(7, 5, density=0.4, random_state=0, format="csr")
    sp.save_npz(tmp_path / "m.npz", m)
    got = ld.load_matrix(tmp_path / "m.npz")
    assert got.format == "csr"
    np.testing.assert_array_equal(got.toarray(), m.toarray())
    arr = np.arange(12, dtype=np.int16).reshape(3, 4)
    np.save(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(ld.load_matrix(tmp_path / "a.npy"), arr)
    np.savez(tmp_path / "one.npz", x=arr)
    np.testing.assert_array_equal(ld.load_matrix(tmp_path / "one.npz"), arr)
    sio.mmwrite(str(tmp_path / "m.mtx"), m)
    got = ld.load_matrix(tmp_path / "m.mtx")
    np.testing.assert_array_equal(got.toarray(), m.toarray())
    with open(tmp_path / "m.mtx", "rb") as src, gzip.open(tmp_path / "g.mtx.gz", "wb") as dst:
        dst.write(src.read())
    np.testing.assert_array_equal(ld.load_matrix(tmp_path / "g.mtx.gz").toarray(), m.toarray())
    sio.mmwrite(str(tmp_path / "d.mtx"), arr.astype(float))
    np.testing.assert_array_equal(ld.load_matrix(tmp_path / "d.mtx"), arr)


def _truncated_npz(p):
    sp.save_npz(p, sp.random(50, 50, density=0.3, random_state=0, format="csr"))
    p.write_bytes(p.read_bytes()[:200])


def _text_npy(p):
    p.write_text("this is not a numpy file\n")


def _object_npy(p):
    np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _bad_mtx(p):
    p.write_text("%%MatrixMarket matrix coordinate real general\n3 3 2\n1 1 1.0\n9 9 x\n")


def _two_arrays_npz(p):
    np.savez(p, a=np.zeros(2), b=np.ones(2))


def _string_npy(p):
    np.save(p, np.array(["a", "b"]))


def _bad_gz(p):
    p.write_bytes(b"not gzip at all")


def _wrong_extension(p):
    p.write_text("1,2,3\n")


@pytest.mark.parametrize("fname,make", [
    ("trunc.npz", _truncated_npz), ("text.npy", _text_npy), ("obj.npy", _object_npy),
    ("bad.mtx", _bad_mtx), ("two.npz", _two_arrays_npz), ("str.npy", _string_npy),
    ("bad.mtx.gz", _bad_gz), ("table.csv", _wrong_extension),
])
def test_load_matrix_rejects_malformed_files(tmp_path, fname, make):
    path = tmp_path / fname
    make(path)
    with pytest.raises(InputFileError, match=fname.replace(".", r"\.")):
        ld.load_matrix(path, "test")


def test_load_matrix_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="adjacency file .*gone.npz not found"):
        ld.load_matrix(tmp_path / "gone.npz", "adjacency")


def test_object_npz_is_not_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([object()], dtype=object))
    with pytest.raises(InputFileError, match="obj.npz"):
        ld.load_matrix(path)


@pytest.mark.parametrize("text,needle", [
    ("Layer, H, W, R, S, C, K, s,\nConv1, 8, 8, 3, 3, 1, 2,\n", "line 2: column 8 is empty"),
    ("Layer, H, W, R, S, C, K, s,\nConv1, 8, 8, x, 3, 1, 2, 1,\n", "line 2: column 4 value 'x'"),
    ("Layer, H, W, R, S, C, K, s,\n\nConv1, 8, 8, 3, 3, 0, 2, 1,\n", "line 3: nonpositive"),
    ("Layer, H, W, R, S, C, K, s,\n,,,,\n", "no layers"),
])
def test_cnn_table_rejects_malformed(tmp_path, text, needle):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputFileError, match=rf"bad\.csv.*{needle}"):
        ld.load_cnn_table(path)


def test_cnn_table_quirks(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("Layer name, H, W, R, S, C, K, s,,,Eh\n,,,,,,,,,,\n\n"
                    " L1 , 10 ,12, 3,3, 4, 8, 2 ,,,99\n\nL2,5,5,1,1,8,8,1,\n\n")
    assert ld.load_cnn_table(path) == [ld.ConvLayer("L1", 10, 12, 3, 3, 4, 8, 2),
                                       ld.ConvLayer("L2", 5, 5, 1, 1, 8, 8, 1)]
    with pytest.raises(InputFileError, match="nope.csv"):
        ld.load_cnn_table(tmp_path / "nope.csv")


def test_unknown_names():
    with pytest.raises(InputFileError, match="'cora2'.*cora, citeseer, pubmed"):
        ld.load_planetoid("cora2")
    with pytest.raises(InputFileError, match="'karat'.*karate"):
        ld.load_other("karat")


def test_density_matched_features():
    x = ld.density_matched_features(100, 30, 0.1, seed=0)
    assert x.shape == (100, 30) and x.nnz == 300 and (x.data == 1).all()
    assert x.has_canonical_format
    y = ld.density_matched_features(100, 30, 0.1, seed=1)
    assert (x != y).nnz > 0
    with pytest.raises(WorkloadError, match="-0.1"):
        ld.density_matched_features(3, 3, -0.1)
    with pytest.raises(WorkloadError, match="n must .* got 0"):
        ld.density_matched_features(0, 3, 0.1)
