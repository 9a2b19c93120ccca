"""OpenMM side of the alanine-dipeptide force-field benchmark (benches/openmm/compare.sh).

Loads the serialised System <tag>.system.xml of the shared fixtures, builds the batch of the
Rust bench (crates/diffsamp-energy/benches/aldp.rs): the 100 configurations of aldp/X100.npy
tiled 100 times, each copy jittered by N(0, 0.002 nm) (numpy-seeded: not bit-identical to the
Rust jitter, statistically the same), and times setPositions + getState(energy, forces) per
configuration on the CPU platform (given thread count) and the Reference platform (a subset,
scaled; said in the output). Prints one JSON line per measurement, plus a parity line: OpenMM's
energy of X100[0] against the fixture's E.npy[0].
"""
import argparse
import json
import os
import time

import numpy as np
import openmm
from openmm import unit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True, help="path of the shared data folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reference-subset", type=int, default=500)
    a = ap.parse_args()
    aldp = os.path.join(a.shared, "aldp")
    x100 = np.load(os.path.join(aldp, "X100.npy")).astype(np.float64)
    rng = np.random.default_rng(0)
    batch = np.concatenate([x100 + rng.normal(0.0, 0.002, x100.shape) for _ in range(100)])
    for tag in ["fab_amber96_obc1", "amber14_vac"]:
        with open(os.path.join(aldp, f"{tag}.system.xml")) as f:
            system = openmm.XmlSerializer.deserialize(f.read())
        e_ref = np.load(os.path.join(aldp, f"{tag}.E.npy"))
        for platform, props, n in [
            ("CPU", {"Threads": str(a.threads)}, len(batch)),
            ("Reference", {}, min(a.reference_subset, len(batch))),
        ]:
            integrator = openmm.VerletIntegrator(0.001)
            ctx = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), props)
            ctx.setPositions(x100[0] * unit.nanometer)
            e0 = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            print(json.dumps({"bench": "aldp-parity", "system": tag, "platform": platform,
                              "energy_x0": e0, "fixture_energy_x0": float(e_ref[0])}))
            best = 0.0
            for _ in range(a.reps + 1):  # the first pass is a warm-up
                t = time.perf_counter()
                for x in batch[:n]:
                    ctx.setPositions(x)
                    s = ctx.getState(getEnergy=True, getForces=True)
                    s.getPotentialEnergy()
                    s.getForces(asNumpy=True)
                best = max(best, n / (time.perf_counter() - t))
            threads = a.threads if platform == "CPU" else 1
            print(json.dumps({"bench": "aldp", "system": tag, "variant": f"openmm-{platform}",
                              "threads": threads, "configs_per_second": round(best, 1),
                              "timed_configs": n}))
            del ctx, integrator


if __name__ == "__main__":
    main()
