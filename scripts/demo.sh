#!/usr/bin/env bash
# The main job on its built-in default: train an Adjoint Sampling sampler on DW-4 with the quick
# config (EGNN control, replay buffer, reciprocal adjoint matching), then evaluate 2000 fresh
# samples against the published validation split. Prints the metrics table; the run directory
# runs/demo holds config.toml, the checkpoint, epochs.jsonl / metrics.jsonl, samples.npy,
# final.json and plots/. Killed part-way, the same command resumes from the last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cargo build --release --quiet -p diffsamp-cli
./target/release/diffsamp train --config configs/dw4_as_quick.toml --out runs/demo "$@"
