#!/usr/bin/env bash
# Side-by-side benchmark of one Adjoint Matching fine-tuning iteration: diffsamp in Rust
# (crates/diffsamp/benches/am_step.rs) against the same networks and steps in PyTorch
# (benches/pytorch/am_step.py), on the same libtorch (torch 2.13.0) with the same number of
# intra-op threads. One iteration = memoryless rollout (K = 40, batch 512) + lean adjoint
# (one VJP through the frozen base drift per step) + clipped loss on 20 steps + Adam step,
# with the MLP velocity (hidden 128, 3 layers, 16 Fourier frequencies), for dim 2 and dim 50.
#
# Usage: benches/pytorch/compare_am.sh [--threads N] [--quick]
#   --threads N  libtorch intra-op threads on both sides (default 1)
#   --quick      shortest criterion warm-up/measurement (still 10 samples) and 3 timed
#                PyTorch repetitions
#
# Runs setup.sh (Python env in .deps/bench-python), then the Rust bench (criterion group
# am_iteration, functions dim2_threads<N> and dim50_threads<N>), then the Python script twice:
# with the glibc settings diffsamp::nn::alloc::retain_freed_memory applies (the like-for-like
# number, as in compare.sh) and with glibc's defaults (what a plain PyTorch script gets). The
# Python run also times the rollout, the adjoint and the loss + Adam step alone.
# Logs and JSON lines: out/am-compare-<N>t/. Prints a table at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
threads=1
quick=0
while (($#)); do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "compare_am.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

"$here/setup.sh"
# shellcheck disable=SC1091
source "$root/.deps/bench-python/env.sh"

out="$root/out/am-compare-${threads}t"
mkdir -p "$out"
export OMP_NUM_THREADS="$threads"
if ((quick)); then
    # Criterion's minimum is 10 samples; its --quick mode would time a single cold iteration.
    crit=(--warm-up-time 1 --measurement-time 1)
    py=(--reps 3 --warmup 1)
else
    crit=(--warm-up-time 2 --measurement-time 5)
    py=(--reps 20 --warmup 3)
fi

cd "$root"
target_dir="$(cargo metadata --format-version 1 --no-deps | "$BENCH_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
stamp="$out/.started"
touch "$stamp"

echo "== Rust: cargo bench -p diffsamp --bench am_step (threads $threads)" >&2
DIFFSAMP_BENCH_THREADS="$threads" \
    cargo bench -p diffsamp --bench am_step -- "${crit[@]}" \
    2>&1 | tee "$out/rust.log" | { grep -E '^\{|time:|thrpt:' >&2 || true; }
grep '^{' "$out/rust.log" >"$out/rust.jsonl" || true

echo "== PyTorch, same allocator settings as the Rust bench (threads $threads)" >&2
"$BENCH_PYTHON" "$here/am_step.py" --threads "$threads" "${py[@]}" --retain-freed-memory \
    | tee "$out/pytorch.jsonl" >&2
echo "== PyTorch, glibc default allocator settings (threads $threads)" >&2
"$BENCH_PYTHON" "$here/am_step.py" --threads "$threads" "${py[@]}" \
    | tee "$out/pytorch_plain.jsonl" >&2

"$BENCH_PYTHON" - "$target_dir/criterion" "$out" "$threads" "$stamp" <<'EOF' | tee "$out/table.md"
import glob, json, os, sys

crit_dir, out, threads, stamp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
since = os.path.getmtime(stamp)
DIMS = (2, 50)

def criterion_median(function_id):
    for bench in glob.glob(os.path.join(crit_dir, "am_iteration", "*", "new", "benchmark.json")):
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
    """{(part, dim): line} of the am_iteration lines of a JSON-lines file."""
    with open(os.path.join(out, name)) as f:
        return {
            (d["part"], d["dim"]): d
            for d in map(json.loads, f)
            if d.get("bench") == "am_iteration"
        }

py, plain = lines("pytorch.jsonl"), lines("pytorch_plain.jsonl")
rust = {dim: criterion_median(f"dim{dim}_threads{threads}") for dim in DIMS}
first = py[("iteration", DIMS[0])]
print(f"\nAdjoint Matching iteration (MLP hidden 128, 3 layers; K = {first['steps']}, "
      f"batch {first['batch']}), libtorch {first['torch']}, {threads} thread(s)\n")
print("| dim | Rust s | PyTorch s | PyTorch/Rust | PyTorch, default malloc s | ratio |")
print("|---|---|---|---|---|---|")
for dim in DIMS:
    r, p, q = rust[dim], py[("iteration", dim)]["median_s"], plain[("iteration", dim)]["median_s"]
    print(f"| {dim} | {r:.4f} | {p:.4f} | {p / r:.2f} | {q:.4f} | {q / r:.2f} |")
print("\nPyTorch, where the time goes (same allocator settings as Rust):\n")
print("| dim | iteration s | rollout s | adjoint s | loss + Adam s |")
print("|---|---|---|---|---|")
for dim in DIMS:
    s = [py[(part, dim)]["median_s"] for part in ("iteration", "rollout", "adjoint", "loss_adam")]
    print(f"| {dim} | " + " | ".join(f"{v:.4f}" for v in s) + " |")
EOF
