"""Tests of accel.config: validation messages, derived sizes, TOML/JSON and the stable id."""

import dataclasses
import hashlib
import json

import pytest

from accel.config import PRESETS, HardwareConfig, load_config, preset
from accel.errors import ConfigError


# ------------------------------------------------------------ validation

@pytest.mark.parametrize("field,value,match", [
    ("rows", 0, "rows must be in 1..256, got 0"),
    ("cols", 257, "cols must be in 1..256, got 257"),
    ("rows", True, "rows must be an integer, got True"),
    ("lmem_depth", 1.5, "lmem_depth must be an integer, got 1.5"),
    ("lmem_depth", "64", "lmem_depth must be an integer, got '64'"),
    ("out_bank_depth", 0, "out_bank_depth must be in 1..4194304, got 0"),
    ("stream_fifo_depth", 1, "stream_fifo_depth must be in 2..65536, got 1"),
    ("load_fifo_depth", 1, "load_fifo_depth must be in 2..65536, got 1"),
    ("dram_bytes_per_cycle", 0, "dram_bytes_per_cycle must be in 1..1048576, got 0"),
    ("dram_latency_cycles", -1, "dram_latency_cycles must be in 0..65536, got -1"),
    ("operand_bits", 1, "operand_bits must be in 2..16, got 1"),
    ("wb_vectors", -1, "wb_vectors must be in 0..257, got -1"),
    ("acc_bits", 65, "acc_bits must be in 8..64, got 65"),
    ("clock_mhz", 0, r"clock_mhz must be a number in \(0, 10000\], got 0"),
    ("clock_mhz", float("nan"), "clock_mhz must be a number .*, got nan"),
    ("clock_mhz", "200", "clock_mhz must be a number .*, got '200'"),
    ("clock_mhz", True, "clock_mhz must be a number .*, got True"),
])
def test_validation_names_field_and_value(field, value, match):
    with pytest.raises(ConfigError, match=match):
        HardwareConfig(**{field: value})


@pytest.mark.parametrize("operand_bits,acc_bits,ok", [
    (8, 16, True), (8, 15, False), (12, 24, True), (12, 23, False), (16, 32, True), (2, 8, True)])
def test_acc_bits_must_hold_exact_products(operand_bits, acc_bits, ok):
    if ok:
        HardwareConfig(operand_bits=operand_bits, acc_bits=acc_bits)
    else:
        with pytest.raises(ConfigError, match=rf"acc_bits \({acc_bits}\) must be at least twice "
                                              rf"operand_bits \({operand_bits}\)"):
            HardwareConfig(operand_bits=operand_bits, acc_bits=acc_bits)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        HardwareConfig().rows = 4


@pytest.mark.parametrize("depth,addr_bits,index_bytes", [
    (1, 1, 1), (2, 1, 1), (3, 2, 1), (256, 8, 1), (257, 9, 2), (1024, 10, 2), (1025, 11, 2),
    (1 << 16, 16, 2), ((1 << 16) + 1, 17, 3)])
def test_derived_address_widths(depth, addr_bits, index_bytes):
    cfg = HardwareConfig(lmem_depth=depth)
    assert cfg.lmem_addr_bits == addr_bits
    assert cfg.stream_index_bytes == index_bytes


def test_derived_sizes():
    cfg = HardwareConfig(rows=3, cols=5, operand_bits=12, acc_bits=24, out_bank_depth=100)
    assert (cfg.pes, cfg.peak_macs_per_cycle) == (15, 15)
    assert (cfg.operand_bytes, cfg.acc_bytes) == (2, 3)
    assert cfg.slot_bits == 7
    assert HardwareConfig(out_bank_depth=1).slot_bits == 1
    assert cfg.pe_latency_cycles + cfg.merge_latency_cycles == 7   # docs/machine.md: issue + C + 6
    assert cfg.writeback_vectors == 4                                 # rows + 1
    assert [cfg.with_(wb_vectors=v).writeback_vectors for v in (1, 3, 4, 9)] == [1, 3, 4, 4]


# ------------------------------------------------------------ id and JSON

_LATE = {"request_lag_cycles": (0, 1), "credit_lag_cycles": (0, 1),
         "lmem_read_cycles": (1, 2)}      # field: (default, another value)


def test_id_is_the_hash_of_the_canonical_fields():
    late = {f: other for f, (_, other) in _LATE.items()}
    cfg = HardwareConfig(rows=4, **late)
    canon = json.dumps(dataclasses.asdict(cfg), sort_keys=True, separators=(",", ":"))
    assert cfg.id == hashlib.sha256(canon.encode()).hexdigest()[:12]
    assert HardwareConfig(rows=4, **late).id == cfg.id


@pytest.mark.parametrize("late", [(), ("request_lag_cycles",), ("credit_lag_cycles",),
                                  ("lmem_read_cycles",)])
def test_id_leaves_out_the_late_fields_at_their_defaults(late):
    # configurations from before the fields existed keep their ids
    cfg = HardwareConfig(rows=4, **{f: _LATE[f][1] for f in late})
    d = dataclasses.asdict(cfg)
    for f in _LATE:
        if f not in late:
            del d[f]
    canon = json.dumps(d, sort_keys=True, separators=(",", ":"))
    assert cfg.id == hashlib.sha256(canon.encode()).hexdigest()[:12]


def test_lmem_read_cycles_add_to_the_pe_latency():
    assert HardwareConfig().pe_latency_cycles == 5
    assert HardwareConfig(lmem_read_cycles=2).pe_latency_cycles == 6
    assert HardwareConfig(lmem_read_cycles=3).pe_latency_cycles == 7
    for bad in (0, 4):
        with pytest.raises(ConfigError, match=rf"^lmem_read_cycles must be in 1\.\.3, got {bad}$"):
            HardwareConfig(lmem_read_cycles=bad)


def test_credit_lag_is_zero_or_one():
    assert HardwareConfig(credit_lag_cycles=1).credit_lag_cycles == 1
    with pytest.raises(ConfigError, match=r"^credit_lag_cycles must be in 0\.\.1, got 2$"):
        HardwareConfig(credit_lag_cycles=2)


_OTHER = {"rows": 3, "cols": 5, "operand_bits": 6, "acc_bits": 40, "lmem_depth": 77,
          "out_bank_depth": 33, "stream_fifo_depth": 9, "load_fifo_depth": 11,
          "dram_bytes_per_cycle": 7, "dram_latency_cycles": 13, "wb_vectors": 2,
          "clock_mhz": 150.5, "request_lag_cycles": 2, "credit_lag_cycles": 1,
          "lmem_read_cycles": 2}


def test_id_changes_with_every_field():
    base = HardwareConfig()
    assert set(_OTHER) == {f.name for f in dataclasses.fields(HardwareConfig)}
    ids = {base.id}
    for name, v in _OTHER.items():
        changed = base.with_(**{name: v})
        assert changed.id != base.id, name
        ids.add(changed.id)
    assert len(ids) == len(_OTHER) + 1


def test_json_round_trip_keeps_id():
    cfg = HardwareConfig(**_OTHER)
    text = cfg.to_json()
    assert json.loads(text)["id"] == cfg.id
    back = HardwareConfig.from_json(text)
    assert back == cfg and back.id == cfg.id


def test_json_errors():
    good = json.loads(HardwareConfig().to_json())
    with pytest.raises(ConfigError, match=r"cfg.json: id 'ffffffffffff' does not match its fields"):
        HardwareConfig.from_json(json.dumps({**good, "id": "ffffffffffff"}), source="cfg.json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        HardwareConfig.from_json("{rows: 8")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        HardwareConfig.from_json("[8, 8]")
    with pytest.raises(ConfigError, match="unknown key.*rowz"):
        HardwareConfig.from_json(json.dumps({"rowz": 8}))
    # a JSON copy without id is accepted (the id is derived)
    del good["id"]
    assert HardwareConfig.from_json(json.dumps(good)) == HardwareConfig()


def test_with_():
    cfg = HardwareConfig().with_(rows=2, cols=3)
    assert (cfg.rows, cfg.cols) == (2, 3)
    with pytest.raises(ConfigError, match="unknown HardwareConfig field.*: colls"):
        HardwareConfig().with_(colls=3)
    with pytest.raises(ConfigError, match="rows must be in 1..256, got 0"):
        HardwareConfig().with_(rows=0)


# ------------------------------------------------------------ TOML and presets

def test_presets_are_valid_and_named():
    assert set(PRESETS) >= {"default", "tiny", "array16", "ample"}
    assert preset("default") == HardwareConfig()
    assert preset("array16").rows == preset("array16").cols == 16
    with pytest.raises(ConfigError, match="unknown preset 'huge'; known: default, tiny"):
        preset("huge")


def test_toml_fields_and_preset(tmp_path):
    p = tmp_path / "hw.toml"
    p.write_text('preset = "tiny"\nrows = 2\nclock_mhz = 100.0\n')
    cfg = load_config(p)
    assert cfg == preset("tiny").with_(rows=2, clock_mhz=100.0)
    p.write_text("cols = 3\n")
    assert load_config(p) == HardwareConfig(cols=3)


@pytest.mark.parametrize("text,match", [
    ("rows = 4\nrowz = 5\n", "unknown key.*rowz"),
    ('preset = "nope"\n', "unknown preset 'nope'"),
    ("rows = \n", "not valid TOML"),
    ("rows = 0\n", "rows must be in 1..256, got 0"),
    ('rows = "8"\n', "rows must be an integer, got '8'"),
    ("[array]\nrows = 4\n", "unknown key.*array"),
])
def test_toml_is_strict(tmp_path, text, match):
    p = tmp_path / "hw.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_toml_error_names_the_file(tmp_path):
    p = tmp_path / "hw.toml"
    p.write_text("rows = 0\n")
    with pytest.raises(ConfigError, match=rf"{p}: rows must be in"):
        load_config(p)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    p.write_bytes(b"\xff\xfe rows = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
