//! Alanine-dipeptide force field: energy + forces per second over a batch of 10 000
//! configurations, single-threaded and through the rayon batch entry point.
//!
//! The batch is the 100 configurations of `aldp/X100.npy` tiled 100 times, each copy jittered
//! by a seeded N(0, 0.002 nm) per coordinate. Systems: `fab_amber96_obc1` (the benchmark
//! target, OBC GB) and `amber14_vac` (vacuum). Each variant runs `DIFFSAMP_BENCH_REPS` times
//! (default 3) after one warm-up pass; the best pass is reported as one JSON line per
//! variant: `{"bench":"aldp","system":..,"threads":..,"configs_per_second":..}`.
//! `DIFFSAMP_BENCH_THREADS` (default 2) sets the rayon pool size of the batched variant.
//! A parity line per system gives the energy of the unjittered frame 0 in kJ/mol next to the
//! fixture's `<tag>.E.npy[0]` (OpenMM Reference), so both sides are seen to evaluate one System.
//!
//! Run: `cargo bench -p diffsamp-energy --bench aldp`; side by side with OpenMM:
//! `benches/openmm/compare.sh`.

use diffsamp_energy::data::{read_npy, shared_data_file};
use diffsamp_energy::{energy_and_grad_batch, Energy, ForceFieldEnergy};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::hint::black_box;
use std::time::Instant;

const COPIES: usize = 100;

fn fixture(name: &str) -> Vec<f64> {
    read_npy(&shared_data_file(&format!("aldp/{name}")).expect("shared data"))
        .expect("aldp fixture")
        .data
}

fn batch(seed: u64) -> Vec<f64> {
    let x = fixture("X100.npy");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, 0.002).expect("valid normal");
    let mut out = Vec::with_capacity(COPIES * x.len());
    for _ in 0..COPIES {
        out.extend(x.iter().map(|v| v + noise.sample(&mut rng)));
    }
    out
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Best configurations/s of `reps` passes of `f` over `n` configurations (after a warm-up).
fn best_rate(n: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            n as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn main() {
    let reps = env_usize("DIFFSAMP_BENCH_REPS", 3);
    let threads = env_usize("DIFFSAMP_BENCH_THREADS", 2);
    let xs = batch(0);
    let x100 = fixture("X100.npy");
    for tag in ["fab_amber96_obc1", "amber14_vac"] {
        let e = ForceFieldEnergy::from_shared(tag, tag, 300.0).expect("fixture system");
        let d = e.dim();
        let e0 = e.energy(&x100[..d]) * e.kt();
        let e0_ref = fixture(&format!("{tag}.E.npy"))[0];
        println!(
            "{{\"bench\":\"aldp-parity\",\"system\":\"{tag}\",\"platform\":\"diffsamp\",\"energy_x0\":{e0},\"fixture_energy_x0\":{e0_ref}}}"
        );
        let n = xs.len() / d;
        let mut grad = vec![0.0; d];
        let single = best_rate(n, reps, || {
            let mut s = 0.0;
            for x in xs.chunks_exact(d) {
                s += e.energy_grad(x, &mut grad);
            }
            black_box(s);
        });
        println!(
            "{{\"bench\":\"aldp\",\"system\":\"{tag}\",\"variant\":\"single\",\"threads\":1,\"configs_per_second\":{single:.1}}}"
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        let (mut energies, mut grads) = (vec![0.0; n], vec![0.0; xs.len()]);
        let batched = best_rate(n, reps, || {
            pool.install(|| energy_and_grad_batch(&e, &xs, &mut energies, &mut grads))
                .expect("batch");
            black_box(&energies);
        });
        println!(
            "{{\"bench\":\"aldp\",\"system\":\"{tag}\",\"variant\":\"rayon\",\"threads\":{threads},\"configs_per_second\":{batched:.1}}}"
        );
    }
}
