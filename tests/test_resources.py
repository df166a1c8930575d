"""reports.resources: the structural counts, the calibrator on results made from known
coefficients, and the committed calibration against the committed synthesis results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from accel.config import HardwareConfig
from reports import resources as rs

SYNTH_DIR = Path(__file__).resolve().parent.parent / "reports" / "data" / "synth"
CAPS = {"max_tiles": 32, "max_blocks": 16, "max_steps": 128, "max_lane_elems": 256,
        "max_lane_loads": 128, "max_phases": 8, "mem_words": 1 << 20}


@pytest.mark.parametrize("depth,width,blocks", [
    (64, 32, 1), (512, 32, 1),           # 512×36
    (1024, 32, 2),                       # 1K×18 twice
    (2048, 32, 4),                       # 2K×9 four times
    (1024, 16, 1), (4096, 4, 1), (16384, 1, 1), (16384, 36, 32), (128, 185, 6),
])
def test_bram_blocks(depth, width, blocks):
    assert rs.bram_blocks(depth, width) == blocks


def test_dsp_and_bram_are_structural():
    k = rs.load_coefficients()
    cfg = HardwareConfig(rows=4, cols=2)
    r = rs.estimate_resources(cfg, k)
    # 8-bit × 32-bit product: two 18×18 multipliers per PE.  Block RAM, by hand (each
    # table copy holds the fields its reader uses: hdl.image.table_reads):
    # 8 PEs × (2 lmem banks 1024×32 at 2 blocks + 2 output halves 512×32 at 1) = 48;
    # 4 lanes × (element sources 256×21: 1, element address/slot/flags 256×22: 1, load
    # requests 128×34 (their byte count is credit_bits = 8 wide): 1, load writes 128×12: 1,
    # stream FIFO 128×32: 1, load FIFO 128×64: 2) = 28; writeback steps 128×117 (all but
    # their slots and byte count): 4, their slots and byte count (credit_bits = 8) 128×44
    # (read one step ahead): 2; the 32-deep tile tables and the 16-deep block table are
    # distributed RAM.  (Yosys and nextpnr count 82 too: reports/data/synth/ecp5_r4x2.json.)
    assert (r["dsp"], r["bram"]) == (8 * 2, 48 + 28 + 6)
    small = cfg.with_(acc_bits=16, lmem_depth=32, out_bank_depth=32, stream_fifo_depth=16,
                      load_fifo_depth=16)
    r16 = rs.estimate_resources(small, k)
    # PE memories, FIFOs and load writes (128×7) now distributed RAM; 4 lanes × (element
    # sources 256×21: 1, the rest 256×13: 1, load requests 128×34: 1) = 12; steps 128×117:
    # 4, their slots and byte count 128×28: 1
    assert (r16["dsp"], r16["bram"]) == (8, 12 + 5)
    assert rs.estimate_resources(HardwareConfig(rows=16, cols=16), k)["fits_device"] is False


def _fake_results(tmp_path, k, configs, placed=True):
    paths = []
    for i, cfg in enumerate(configs):
        est = rs.estimate_resources(cfg, k)
        d = {"config": cfg.to_dict(), "capacities": CAPS, "device": "LFE5U-85F CABGA381",
             "placed": placed, **{f: est[f] for f in ("lut", "ff", "dsp", "bram")},
             "fmax_mhz": 1000.0 / sum(k[f"fmax_ns_{n}"] * v
                                      for n, v in rs._fmax_terms(cfg).items())}
        p = tmp_path / f"r{i}" / "synth.json"
        p.parent.mkdir()
        p.write_text(json.dumps(d))
        paths.append(p)
    return paths


CONFIGS = [HardwareConfig(rows=r, cols=c, load_fifo_depth=lf, stream_fifo_depth=sf)
           for r, c, lf, sf in [(1, 4, 128, 128), (2, 2, 128, 128), (2, 4, 128, 128),
                                (4, 2, 128, 128), (4, 4, 128, 128), (2, 2, 32, 128),
                                (2, 2, 512, 128), (2, 2, 128, 512), (4, 1, 128, 128),
                                (4, 2, 64, 256), (1, 4, 256, 64)]] + [
    HardwareConfig(rows=4, cols=4, wb_vectors=1), HardwareConfig(rows=2, cols=4, wb_vectors=2),
    # another accumulator width, as the real calibration has: without it the distributed
    # RAM's bits hardly vary apart from the rows, and leaving one result out leaves that
    # term loose
    HardwareConfig(rows=2, cols=2, acc_bits=16)]


def test_calibrate_recovers_known_coefficients(tmp_path):
    true = dict(rs.load_coefficients(), lut_base=3000.0, lut_rows=4000.0, lut_cols=50.0,
                lut_pe_bits=12.0, lut_wb_bits=3.0, lut_lutram_bits=0.02, lut_flag_bits=2.0, lut_rows_sq=100.0, ff_base=400.0, ff_rows=300.0,
                ff_cols=20.0, ff_pe_bits=4.0, ff_flag_bits=1.0, fmax_ns_base=30.0,
                fmax_ns_rows=6.0, fmax_ns_log2_cols=1.5)
    fit = rs.calibrate(_fake_results(tmp_path, true, CONFIGS), base=true)
    for name in ("lut_base", "lut_rows", "lut_lutram_bits", "ff_pe_bits", "fmax_ns_rows"):
        assert fit[name] == pytest.approx(true[name], rel=0.02), name
    assert fit["calibrated"] is True and fit["capacities"] == CAPS
    # results are rounded to whole cells: the errors are tiny, not zero by construction
    for kind in ("in_sample", "loo"):
        assert fit["error"][kind]["lut"]["max"] < 0.01
        assert fit["error"][kind]["fmax_mhz"]["results"] == len(CONFIGS)
    # the written table loads back and predicts the same
    out = tmp_path / "fit.toml"
    out.write_text(rs._toml(fit))
    back = rs.load_coefficients(out)
    cfg = HardwareConfig(rows=8, cols=8)
    assert rs.estimate_resources(cfg, back) == rs.estimate_resources(cfg, fit)


def test_calibrate_rejects_bad_input(tmp_path):
    k = rs.load_coefficients()
    paths = _fake_results(tmp_path, k, CONFIGS[:3])
    with pytest.raises(rs.ResourceModelError, match="more than 8 synthesis results"):
        rs.calibrate(paths)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(rs.ResourceModelError, match="bad.json"):
        rs.calibrate([bad] * 6)
    d = json.loads(paths[0].read_text())
    bad.write_text(json.dumps({**d, "top": "array"}))
    with pytest.raises(rs.ResourceModelError, match="not of the whole core"):
        rs.calibrate([bad] * 8)
    bad.write_text(json.dumps({"config": {"rows": 2}}))
    with pytest.raises(rs.ResourceModelError, match="missing or bad key"):
        rs.calibrate([bad] * 6)
    (tmp_path / "o").mkdir()
    other = _fake_results(tmp_path / "o", k, CONFIGS)
    d = json.loads(other[0].read_text())
    d["capacities"] = {**CAPS, "max_tiles": 64}
    other[0].write_text(json.dumps(d))
    with pytest.raises(rs.ResourceModelError, match="different program capacities"):
        rs.calibrate(other)


def test_load_coefficients_rejects_bad_tables(tmp_path):
    good = (Path(rs.__file__).parent / "data" / "fpga_resources.toml").read_text()
    p = tmp_path / "t.toml"
    p.write_text("lut_per_banana = 1\n" + good)
    with pytest.raises(rs.ResourceModelError, match="lut_per_banana"):
        rs.load_coefficients(p)
    p.write_text(good.replace("lut_rows = ", "lut_rows = -", 1))
    with pytest.raises(rs.ResourceModelError, match="lut_rows"):
        rs.load_coefficients(p)


def test_committed_calibration_matches_committed_results():
    """The shipped coefficients are calibrated on reports/data/synth/ and reproduce each
    result within the in-sample error they state."""
    k = rs.load_coefficients()
    assert k["calibrated"] is True
    files = sorted(SYNTH_DIR.glob("*.json"))
    assert len(files) == len(k["results"])
    refit = rs.calibrate(files, base=k)
    for name in rs._KEYS:
        assert refit[name] == pytest.approx(k[name], rel=1e-9), name
    for f in files:
        d = json.loads(f.read_text())
        est = rs.estimate_resources(HardwareConfig.from_dict(d["config"]), k)
        assert (est["dsp"], est["bram"]) == (d["dsp"], d["bram"]), f.name
        for what in ("lut", "ff"):
            assert abs(est[what] - d[what]) / d[what] <= \
                k["error"]["in_sample"][what]["max"] + 1e-3, (f.name, what)
        if d.get("placed"):
            rel = abs(est["fmax_mhz"] - d["fmax_mhz"]) / d["fmax_mhz"]
            assert rel <= k["error"]["in_sample"]["fmax_mhz"]["max"] + 1e-2, f.name
    assert not math.isnan(k["error"]["loo"]["lut"]["max"])


def test_no_fmax_for_a_request_lag_the_rtl_does_not_build():
    # the calibration is of the RTL, which implements request_lag_cycles 0 only
    k = rs.load_coefficients()
    base = rs.estimate_resources(HardwareConfig(rows=4, cols=2), k)
    for lags in ({"request_lag_cycles": 2}, {"request_lag_cycles": 3, "credit_lag_cycles": 1}):
        lagged = rs.estimate_resources(HardwareConfig(rows=4, cols=2, **lags), k)
        assert base["fmax_mhz"] is not None and lagged["fmax_mhz"] is None
        assert {n: lagged[n] for n in ("lut", "ff", "dsp", "bram")} == \
            {n: base[n] for n in ("lut", "ff", "dsp", "bram")}


def test_lmem_read_cycles_add_the_pe_registers_and_no_fmax():
    # the calibration is of lmem_read_cycles 1; 2 adds counted registers to every PE
    k = rs.load_coefficients()
    base = rs.estimate_resources(HardwareConfig(rows=4, cols=2), k)
    two = rs.estimate_resources(HardwareConfig(rows=4, cols=2, lmem_read_cycles=2), k)
    assert base["fmax_mhz"] is not None and two["fmax_mhz"] is None
    # 8 PEs (two banks' data: the default banks are larger than a DP16KD's 512 words, so
    # flip-flops) and 4 rows (the last PE's element fields, the shift rest,
    # rounded and saturated values, bound and mask), default depths: slot 9 bits
    added = 8 * 2 * 32 + 4 * (3 * 32 + 9 + 10)
    assert rs.read_register_bits(HardwareConfig(rows=4, cols=2, lmem_read_cycles=2)) == added
    assert rs.read_register_bits(HardwareConfig(rows=4, cols=2)) == 0
    # 512-word banks: the block RAMs' output registers hold the data
    assert rs.read_register_bits(HardwareConfig(rows=4, cols=2, lmem_read_cycles=2,
                                                lmem_depth=512)) == 4 * (3 * 32 + 9 + 10)
    assert two["ff"] - base["ff"] in range(added - 1, added + 2)
    # 3: the selected operands in every PE (8 and 32 bits) and the last PE's element
    # fields in every row
    three = HardwareConfig(rows=4, cols=2, lmem_read_cycles=3)
    assert rs.read_register_bits(three) == added + 8 * (32 + 8) + 4 * (9 + 6)
    assert rs.estimate_resources(three, k)["fmax_mhz"] is None
    assert {n: two[n] for n in ("lut", "dsp", "bram")} == \
        {n: base[n] for n in ("lut", "dsp", "bram")}
