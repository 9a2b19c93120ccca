#!/usr/bin/env bash
# Side-by-side benchmark: diffsamp's EGNN in Rust (crates/diffsamp/benches/egnn_step.rs) against
# the same network and steps in PyTorch (benches/pytorch/egnn_as_step.py), on the same libtorch
# (torch 2.13.0) with the same number of intra-op threads.
#
# Usage: benches/pytorch/compare.sh [--threads N] [--quick]
#   --threads N  libtorch intra-op threads on both sides (default 1)
#   --quick      shortest criterion warm-up/measurement (still 10 samples), 3 timed PyTorch
#                repetitions, 1 rollout per side and allocator setting (≈ 2.5 min at 1 thread
#                instead of ≈ 5)
#
# Runs setup.sh (Python env in .deps/bench-python), then the Rust bench (forward, RAM training
# step, bare matmuls, 1000-step rollout), then the Python script twice: with the glibc settings
# the Rust bench applies (diffsamp::nn::alloc::retain_freed_memory, the like-for-like number)
# and with glibc's defaults (what a plain PyTorch script gets). The Python run also loads the
# Rust network's exported parameters and checks that both networks give the same output.
# Logs and JSON lines: out/egnn-compare-<N>t/. Prints a table at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
threads=1
quick=0
while (($#)); do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

"$here/setup.sh"
# shellcheck disable=SC1091
source "$root/.deps/bench-python/env.sh"

out="$root/out/egnn-compare-${threads}t"
mkdir -p "$out"
export OMP_NUM_THREADS="$threads"
if ((quick)); then
    # Criterion's minimum is 10 samples (flat sampling: one iteration each); its --quick mode
    # would time a single cold iteration of the 2-4 s training step.
    crit=(--warm-up-time 1 --measurement-time 1)
    py=(--reps 3 --warmup 1 --rollout-reps 1)
    rollout_reps=1
else
    crit=(--warm-up-time 2 --measurement-time 5)
    py=(--reps 10 --warmup 2 --rollout-reps 3)
    rollout_reps=3
fi

cd "$root"
target_dir="$(cargo metadata --format-version 1 --no-deps | "$BENCH_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
stamp="$out/.started"
touch "$stamp"

echo "== Rust: cargo bench -p diffsamp --bench egnn_step (threads $threads)" >&2
DIFFSAMP_BENCH_THREADS="$threads" DIFFSAMP_BENCH_ROLLOUT_REPS="$rollout_reps" \
    DIFFSAMP_BENCH_EXPORT="$out/rust_egnn.safetensors" \
    cargo bench -p diffsamp --bench egnn_step -- "${crit[@]}" 'forward|ram_step|bare_matmuls' \
    2>&1 | tee "$out/rust.log" | { grep -E '^\{|time:|thrpt:|rollout' >&2 || true; }
grep '^{' "$out/rust.log" >"$out/rust.jsonl"

echo "== PyTorch, same allocator settings as the Rust bench (threads $threads)" >&2
"$BENCH_PYTHON" "$here/egnn_as_step.py" --threads "$threads" "${py[@]}" --retain-freed-memory \
    --check "$out/rust_egnn.safetensors" | tee "$out/pytorch.jsonl" >&2
echo "== PyTorch, glibc default allocator settings (threads $threads)" >&2
"$BENCH_PYTHON" "$here/egnn_as_step.py" --threads "$threads" "${py[@]}" \
    | tee "$out/pytorch_plain.jsonl" >&2

"$BENCH_PYTHON" - "$target_dir/criterion" "$out" "$threads" "$stamp" <<'EOF' | tee "$out/table.md"
import glob, json, os, sys

crit_dir, out, threads, stamp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
since = os.path.getmtime(stamp)

def criterion_median(function_id):
    for bench in glob.glob(os.path.join(crit_dir, "egnn_lj13_h128_l5", "*", "new", "benchmark.json")):
        with open(bench) as f:
            meta = json.load(f)
        if meta["function_id"] != function_id:
            continue
        est = os.path.join(os.path.dirname(bench), "estimates.json")
        if os.path.getmtime(est) < since:
            raise SystemExit(f"criterion result for {function_id} is from an earlier run")
        with open(est) as f:
            return json.load(f)["median"]["point_estimate"] * 1e-9
    raise SystemExit(f"no criterion result for {function_id} in {crit_dir}")

def lines(name):
    with open(os.path.join(out, name)) as f:
        return {d["bench"]: d for d in map(json.loads, f) if d.get("bench")}

rust_lines, py, plain = lines("rust.jsonl"), lines("pytorch.jsonl"), lines("pytorch_plain.jsonl")
rust = {
    "forward": criterion_median(f"forward/threads{threads}/batch512"),
    "ram_step": criterion_median(f"ram_step/threads{threads}/batch512"),
    "bare_matmul": criterion_median(f"bare_matmuls_same_flops/threads{threads}"),
    "rollout": rust_lines["rollout"]["median_s"],
}
rb = rust_lines["rollout"]["batch"]
if py["check"]["max_abs_diff"] > 1e-5 * max(1.0, py["check"]["max_abs_output"]):
    print("WARNING: the PyTorch network does not reproduce the Rust network's output")
rows = [
    ("forward, batch 512", "forward"),
    ("RAM training step, batch 512", "ram_step"),
    (f"EM rollout, 1000 steps, batch {rb}", "rollout"),
    ("bare matmuls, same flops as forward", "bare_matmul"),
]
assert py["rollout"]["batch"] == rb and py["rollout"]["steps"] == rust_lines["rollout"]["steps"]
print(f"\nEGNN LJ-13 (5 layers, hidden 128), libtorch {py['forward']['torch']}, {threads} thread(s)")
print(f"parameters: rust {rust_lines['params']['count']}, pytorch {py['params']['count']}; "
      f"same weights -> max |v_rust - v_pytorch| = {py['check']['max_abs_diff']:.2e} "
      f"(max |v| = {py['check']['max_abs_output']:.2e})\n")
print("| what | Rust s | PyTorch s | PyTorch/Rust | PyTorch, default malloc s | ratio |")
print("|---|---|---|---|---|---|")
for label, key in rows:
    r, p, q = rust[key], py[key]["median_s"], plain[key]["median_s"]
    print(f"| {label} | {r:.3f} | {p:.3f} | {p / r:.2f} | {q:.3f} | {q / r:.2f} |")
step_flops = py["ram_step"]["linear_flops"]   # 3 x forward linear-layer flops (fwd + bwd)
mm_flops = py["bare_matmul"]["flops"]
step_rate = step_flops / rust["ram_step"]
mm_rate = mm_flops / rust["bare_matmul"]
print(f"\nRust RAM step: {step_flops:.3g} linear-layer flops (3 x forward) in {rust['ram_step']:.3f} s "
      f"= {step_rate / 1e9:.1f} Gflop/s; bare f32 matmul {mm_rate / 1e9:.1f} Gflop/s; "
      f"step / matmul = {step_rate / mm_rate:.2f} (target >= 0.5)")
fwd_rate = py["forward"]["linear_flops"] / rust["forward"]
print(f"Rust forward: {fwd_rate / 1e9:.1f} Gflop/s = {fwd_rate / mm_rate:.2f} of the matmul rate")
EOF
