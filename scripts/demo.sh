#!/usr/bin/env bash
# The main job on its built-in default: DW-4 reference samples by MCMC, evaluated against the
# published validation split (metrics table, runs/demo/eval.json, plots in runs/demo/plots/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cargo build --release --quiet -p diffsamp-cli
shared="${DIFFSAMP_SHARED_DATA:-../shared/data}"
out=runs/demo
mkdir -p "$out"
./target/release/diffsamp reference --system dw4 --n 2000 --seed 0 --out "$out/dw4_reference.npy"
./target/release/diffsamp eval --system dw4 --samples "$out/dw4_reference.npy" \
    --reference "$shared/val_split_DW4.npy" --n 2000 --seed 0 \
    --json "$out/eval.json" --plots "$out/plots"
