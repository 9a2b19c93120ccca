#!/usr/bin/env bash
# Reproduces the Adjoint Matching figures of docs/RESULTS.md (≈ 45 min on 2 CPU cores).
# Usage: bash scripts/am_results.sh [out-dir (default runs/am)]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/am}"
mkdir -p "$out"
bin=target/release/diffsamp
cargo build --release -p diffsamp-cli --quiet
ft() { "$bin" flow finetune --torch-threads 1 "$@" >"${@: -1}.log" 2>&1; }
# Lean vs basic adjoint on the same problem (N(0, I) tilted by a quadratic reward).
ft --base gaussian:2 --reward 'quadratic:1,0.5' --iterations 200 --adjoint lean --out "$out/lean" &
ft --base gaussian:2 --reward 'quadratic:1,0.5' --iterations 200 --adjoint basic --out "$out/basic"
wait
# Sampling as fine-tuning: N(0, I) base, r = −E + ½‖x‖².
ft --base gaussian:5 --reward boltzmann:many-well-5 --iterations 300 --out "$out/mw5" &
ft --base gaussian:2 --reward boltzmann:gmm40 --iterations 300 --out "$out/gmm40" 
wait
# λ sweep: reward, diversity and KL from the base (λ = 1 is the lean run above).
for lam in 0.5 2; do
    ft --base gaussian:2 --reward 'quadratic:1,0.5' --lambda "$lam" --iterations 150 --out "$out/lambda$lam" &
done
wait
# A flow model pretrained on GMM-40 (the base of reward fine-tuning experiments).
"$bin" flow pretrain --target gmm40 --steps 4000 --torch-threads 1 --out "$out/base_gmm40" >"$out/base_gmm40.log" 2>&1
# A sharper base (20 000 steps) fine-tuned toward the closed-form tilt, two seeds
# (configs/am_gmm40_tilt.toml; the config names its base runs/am_base_gmm40_20k).
"$bin" flow pretrain --target gmm40 --steps 20000 --torch-threads 1 --out runs/am_base_gmm40_20k \
    >"$out/base_gmm40_20k.log" 2>&1
for seed in 0 1; do
    ft --config configs/am_gmm40_tilt.toml --seed "$seed" --out "$out/tilt_s$seed" &
done
wait
# The same tilt on GMM-40 with its means × 0.25 (overlapping modes, configs/am_gmm40q_tilt.toml),
# scored against the closed-form tilt by the am_checks example.
cargo build --release -p diffsamp --example am_checks --quiet
checks=target/release/examples/am_checks
"$checks" mixture-samples --scale 0.25 --out runs/gmm40q.npy
"$bin" flow pretrain --target runs/gmm40q.npy --steps 20000 --torch-threads 1 \
    --out runs/am_base_gmm40q_20k >"$out/base_gmm40q_20k.log" 2>&1
for seed in 0 1; do
    ft --config configs/am_gmm40q_tilt.toml --seed "$seed" --out "$out/tilt_q_s$seed" &
done
wait
for seed in 0 1; do
    "$checks" compare --scale 0.25 --reward 'quadratic:0,0;k=0.032' \
        --samples "$out/tilt_q_s$seed/samples.npy"
done
# Is the lean-adjoint target unbiased at the optimum? (exact GMM-40 base and tilt)
"$checks" adjoint-bias --n 8192 >"$out/adjoint_bias.txt"
"$checks" adjoint-bias --n 65536 >"$out/adjoint_bias_n65536.txt"
"$checks" adjoint-bias --n 8192 --scale 0.25 --reward 'quadratic:0,0;k=0.032' >"$out/adjoint_bias_q.txt"
