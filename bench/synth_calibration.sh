#!/usr/bin/env bash
# Synthesis runs behind the FPGA resource model, then its calibration:
#   bash bench/synth_calibration.sh [WORK_DIR]     (default /tmp/axw_synth; about 55 minutes on 2 cores)
# Placed runs (Yosys + nextpnr, placement seed 1) give LUT/FF/DSP/BRAM and fmax; packed-only
# runs (--synth-pack-only) give LUT/FF/DSP/BRAM of other shapes and of other memory
# depths and widths in minutes.  Each synth.json is copied to reports/data/synth/ and
# reports/data/fpga_resources.toml is refitted from them (its [error] tables state the
# in-sample and leave-one-out errors).  Two runs go at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${1:-/tmp/axw_synth}
accel=${ACCEL:-accel}   # e.g. ACCEL=.venv/bin/accel PYTHON=.venv/bin/python
mkdir -p "$work"

placed=("2 2" "2 4" "4 2" "4 4" "4 1" "1 4" "8 1")
packed=("2 8" "8 2" "8 8" "1 8" "4 8")
# name: extra config lines (rows/cols first)
configs=(
  "lf32|rows = 2|cols = 2|load_fifo_depth = 32"
  "lf512|rows = 2|cols = 2|load_fifo_depth = 512"
  "sf512|rows = 2|cols = 2|stream_fifo_depth = 512"
  "lm2048|rows = 2|cols = 2|lmem_depth = 2048"
  "acc16|rows = 2|cols = 2|acc_bits = 16"
  "lm128|rows = 4|cols = 4|lmem_depth = 128|out_bank_depth = 64"
  "acc24|rows = 2|cols = 4|acc_bits = 24|load_fifo_depth = 64"
  "fit8|rows = 8|cols = 8|lmem_depth = 512|out_bank_depth = 16|stream_fifo_depth = 64|load_fifo_depth = 16"
  "v1_4x4|rows = 4|cols = 4|wb_vectors = 1"
  "v2_2x4|rows = 2|cols = 4|wb_vectors = 2"
  "fit8v2|rows = 8|cols = 8|lmem_depth = 512|out_bank_depth = 16|stream_fifo_depth = 64|load_fifo_depth = 16|wb_vectors = 2"
)

jobs_list=()
for rc in "${placed[@]}"; do set -- $rc
  jobs_list+=("r$1x$2|--rows $1 --cols $2 --synth ecp5 --synth-seeds 1"); done
for rc in "${packed[@]}"; do set -- $rc
  jobs_list+=("p$1x$2|--rows $1 --cols $2 --synth ecp5 --synth-pack-only"); done
for c in "${configs[@]}"; do
  name=${c%%|*}
  printf '%s\n' "${c#*|}" | tr '|' '\n' > "$work/$name.toml"
  jobs_list+=("p_$name|--config $work/$name.toml --synth ecp5 --synth-pack-only")
done

run() {  # NAME ARGS...
  local name=$1; shift
  if [ -f "$work/$name/synth.json" ]; then echo "have $name"; return 0; fi
  echo "run  $name: accel hdl $* --out $work/$name"
  # a design that does not fit still writes synth.json (fits: false) and fails: keep it
  $accel hdl "$@" --out "$work/$name" > "$work/$name.log" 2>&1 || \
    [ -f "$work/$name/synth.json" ] || { cat "$work/$name.log"; return 1; }
}

for j in "${jobs_list[@]}"; do
  run ${j%%|*} ${j#*|} &
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do sleep 5; done
done
wait

mkdir -p "$repo/reports/data/synth"
for j in "${jobs_list[@]}"; do
  name=${j%%|*}
  cp "$work/$name/synth.json" "$repo/reports/data/synth/ecp5_$name.json"
done
"${PYTHON:-python3}" -m reports.resources calibrate "$repo"/reports/data/synth/*.json \
  --out "$repo/reports/data/fpga_resources.toml"
