#!/usr/bin/env bash
# Side-by-side benchmark: the native alanine-dipeptide force field (energy + forces of a batch
# of 10 000 configurations, crates/diffsamp-energy/benches/aldp.rs) against OpenMM's CPU and
# Reference platforms on the same serialised Systems (benches/openmm/aldp_openmm.py).
#
# Usage: benches/openmm/compare.sh [--threads N] [--reps R]
#   --threads N  rayon threads of the Rust batch and OpenMM CPU-platform threads (default 2)
#   --reps R     timed passes per variant, best reported (default 3)
#
# Installs openmm (PyPI) and numpy into the git-ignored .deps/venv-openmm on first use. Needs the
# shared data folder at ../shared (or SHARED=path). Logs and JSON lines: out/aldp-openmm-<N>t/.
# Prints the energy of frame 0 on each side against the fixture (the same System), then a table:
# configurations/s and the ratio to OpenMM's CPU platform at the same thread count
# (single-threaded Rust against OpenMM CPU with 1 thread when N = 1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
threads=2
reps=3
while (($#)); do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --reps) reps="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
shared="${SHARED:-$root/../shared}"
[[ -d "$shared/data/aldp" ]] || { echo "compare.sh: no $shared/data/aldp (set SHARED)" >&2; exit 2; }
venv="$root/.deps/venv-openmm"
if ! "$venv/bin/python" -c 'import openmm, numpy' 2>/dev/null; then
    echo "== installing openmm into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q openmm==8.6.1 numpy
fi
out="$root/out/aldp-openmm-${threads}t"
mkdir -p "$out"
cd "$root"
echo "== Rust: cargo bench -p diffsamp-energy --bench aldp (threads $threads)" >&2
DIFFSAMP_BENCH_THREADS="$threads" DIFFSAMP_BENCH_REPS="$reps" \
    cargo bench -q -p diffsamp-energy --bench aldp 2>"$out/rust.log" | tee "$out/rust.jsonl"
echo "== OpenMM $("$venv/bin/python" -c 'import openmm; print(openmm.__version__)')" >&2
"$venv/bin/python" "$here/aldp_openmm.py" --shared "$shared/data" --threads "$threads" \
    --reps "$reps" | tee "$out/openmm.jsonl"
"$venv/bin/python" - "$out" "$threads" <<'PY'
import json, sys
out, threads = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for f in ("rust.jsonl", "openmm.jsonl") for l in open(f"{out}/{f}")]
parity = [r for r in rows if r["bench"] == "aldp-parity"]
rows = [r for r in rows if r["bench"] == "aldp"]
print("\nenergy of X100[0], kJ/mol (fixture: <system>.E.npy[0], OpenMM Reference)")
for r in parity:
    d = r["energy_x0"] - r["fixture_energy_x0"]
    print(f"{r['system']:<18} {r['platform']:<18} {r['energy_x0']:>14.6f}   fixture {r['fixture_energy_x0']:.6f}   diff {d:+.1e}")
print(f"\n{'system':<18} {'implementation':<18} {'threads':>7} {'configs/s':>11} {'vs OpenMM CPU':>14}")
for system in dict.fromkeys(r["system"] for r in rows):
    base = {r["threads"]: r["configs_per_second"] for r in rows
            if r["system"] == system and r["variant"] == "openmm-CPU"}
    for r in rows:
        if r["system"] != system:
            continue
        b = base.get(r["threads"])
        ratio = f"{r['configs_per_second'] / b:.2f}x" if b else "-"
        print(f"{system:<18} {r['variant']:<18} {r['threads']:>7} {r['configs_per_second']:>11.1f} {ratio:>14}")
PY
