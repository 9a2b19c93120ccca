//! LJ-55 energy + gradient throughput (configurations/s): optimised kernel vs naive baseline.
//!
//! Batch of 1000 seeded configurations (jittered simple-cubic lattice, spacing 1.1, COM
//! removed). Variants: `naive` ([`lennard_jones::naive::energy_grad`], all ordered pairs,
//! sqrt + powf) and `optimised` ([`LennardJones`], i<j once, s = 1/d², no sqrt), each
//! single-threaded and through the rayon batch entry point.
//!
//! Cost of one LJ-55 energy + gradient in the optimised kernel (see the module docs of
//! `lennard_jones`): 26 flops per unordered pair (one of them a division) × 1485 pairs
//! ≈ 38 600 flops, plus ≈ 700 for the centre of mass and restraint: ≈ 3.9e4 flops per
//! configuration. Throughput × 3.9e4 = achieved flop/s, to compare with the machine's peak.
//!
//! The machine's limit is measured in the same run: `peak/threads1` times a loop of
//! independent multiply-adds over 64 f64 lanes (what this build's instruction set can issue
//! per core; throughput reported as flop/s). Ratio = (configs/s × 3.9e4) / peak flop/s.
//!
//! Run: `cargo bench -p diffsamp-energy --bench lj55`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diffsamp_energy::{energy_and_grad_batch, lennard_jones, Energy, LennardJones, Particles};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

const BATCH: usize = 1000;
const N: usize = 55;

/// `BATCH` LJ-55 configurations: the first 55 sites of a 4×4×4 cubic lattice with spacing 1.1,
/// each coordinate jittered by U(−0.15, 0.15), COM removed.
fn configurations(seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let layout = Particles { n: N, spatial: 3 };
    let mut xs = Vec::with_capacity(BATCH * 3 * N);
    for _ in 0..BATCH {
        let mut x: Vec<f64> = (0..64)
            .flat_map(|s| [s / 16, (s / 4) % 4, s % 4])
            .take(3 * N)
            .map(|v| 1.1 * v as f64 + rng.random_range(-0.15..0.15))
            .collect();
        layout.remove_com(&mut x);
        xs.extend_from_slice(&x);
    }
    xs
}

fn bench_lj55(c: &mut Criterion) {
    let xs = configurations(0);
    let lj = LennardJones::lj55();
    let d = lj.dim();
    let threads = rayon::current_num_threads();
    let mut grads = vec![0.0; xs.len()];
    let mut energies = vec![0.0; BATCH];

    let mut group = c.benchmark_group("lj55_energy_grad");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);

    group.bench_function(format!("naive/threads1/batch{BATCH}"), |b| {
        b.iter(|| {
            let mut total = 0.0;
            for (x, g) in xs.chunks_exact(d).zip(grads.chunks_exact_mut(d)) {
                total += lennard_jones::naive::energy_grad(black_box(x), g).expect("shapes match");
            }
            black_box(total)
        })
    });
    group.bench_function(format!("optimised/threads1/batch{BATCH}"), |b| {
        b.iter(|| {
            let mut total = 0.0;
            for (x, g) in xs.chunks_exact(d).zip(grads.chunks_exact_mut(d)) {
                total += lj.energy_grad(black_box(x), g);
            }
            black_box(total)
        })
    });
    group.bench_function(format!("naive/rayon{threads}/batch{BATCH}"), |b| {
        use rayon::prelude::*;
        b.iter(|| {
            xs.par_chunks_exact(d)
                .zip(grads.par_chunks_exact_mut(d))
                .zip(energies.par_iter_mut())
                .for_each(|((x, g), e)| {
                    *e = lennard_jones::naive::energy_grad(x, g).expect("shapes match")
                });
            black_box(energies[0])
        })
    });
    group.bench_function(format!("optimised/rayon{threads}/batch{BATCH}"), |b| {
        b.iter(|| {
            energy_and_grad_batch(&lj, black_box(&xs), &mut energies, &mut grads)
                .expect("shapes match");
            black_box(energies[0])
        })
    });
    group.finish();
}

/// Flops of one call: `ITERS` rounds of a multiply and an add on each of `LANES` accumulators.
const LANES: usize = 64;
const ITERS: usize = 100_000;

fn peak_loop(a: f64, b: f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    for (k, v) in acc.iter_mut().enumerate() {
        *v = k as f64 * 1e-3;
    }
    for _ in 0..ITERS {
        for v in acc.iter_mut() {
            *v = *v * a + b;
        }
    }
    acc.iter().sum()
}

fn bench_peak(c: &mut Criterion) {
    let mut group = c.benchmark_group("lj55_energy_grad");
    group.throughput(Throughput::Elements((2 * LANES * ITERS) as u64));
    group.sample_size(20);
    group.bench_function("peak_mul_add_flops/threads1", |b| {
        b.iter(|| black_box(peak_loop(black_box(0.999_999), black_box(1e-6))))
    });
    group.finish();
}

criterion_group!(benches, bench_lj55, bench_peak);
criterion_main!(benches);
