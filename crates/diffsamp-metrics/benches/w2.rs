//! Criterion benchmark of geometric W2 (AS protocol) on 2000 vs 2000 LJ-13-sized configurations, pruned vs dense OT.
//!
//! `cargo bench -p diffsamp-metrics --bench w2` runs the criterion groups (about 5 minutes
//! on 2 cores: every dense sample evaluates 4 million pair costs): the N×N assignment alone,
//! and geometric W2 pruned vs dense on (a) COM-free Gaussian clouds, N = 2000, where the
//! bound is weak and both do the same work, and (b) clouds of sizes 1.5^k, N = 1000, where
//! the bound prunes. Timings on a shared machine drift with its load: compare the printed
//! fractions of computed pair costs too. With
//! `DIFFSAMP_BENCH_LJ55=1` it also times one LJ-55 2000×2000 geometric W2 (default config:
//! AS protocol, pruned solver) and prints it; that run takes minutes and is not part of
//! criterion.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use diffsamp_metrics::{
    geometric_w2, linear_assignment, remove_com, GeometricW2Config, OtSolver, ParticleLayout,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const N: usize = 2000;

/// `n` COM-free Gaussian point clouds (unit std per coordinate), seeded.
fn clouds(seed: u64, n: usize, layout: ParticleLayout) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xs: Vec<f64> = (0..n * layout.dim())
        .map(|_| rng.sample(StandardNormal))
        .collect();
    remove_com(&xs, layout).expect("valid layout")
}

/// Like [`clouds`], but each configuration scaled by 1.5^k, k uniform in 0..10 (sets whose
/// configurations differ in size: there the lower bound prunes).
fn spread_clouds(seed: u64, n: usize, layout: ParticleLayout) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut xs = clouds(seed + 100, n, layout);
    for row in xs.chunks_exact_mut(layout.dim()) {
        let s = 1.5f64.powi(rng.random_range(0..10));
        row.iter_mut().for_each(|v| *v *= s);
    }
    xs
}

fn bench_geometric_w2(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    let layout = ParticleLayout::new(13, 3);
    let cases = [
        ("lj13_gauss", N, clouds(1, N, layout), clouds(2, N, layout)),
        (
            "lj13_spread",
            N / 2,
            spread_clouds(1, N / 2, layout),
            spread_clouds(2, N / 2, layout),
        ),
    ];
    for (name, n, a, b) in &cases {
        let mut group = c.benchmark_group(format!("geometric_w2/{name}_n{n}_threads{threads}"));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(20));
        for (solver_name, solver) in [("pruned", OtSolver::pruned()), ("dense", OtSolver::Dense)] {
            let cfg = GeometricW2Config {
                solver,
                ..Default::default()
            };
            // Printed once, and only when the benchmark is selected by criterion's filter.
            let mut reported = false;
            group.bench_function(BenchmarkId::from_parameter(solver_name), |bencher| {
                if !reported {
                    reported = true;
                    let r = geometric_w2(a, b, layout, &cfg).expect("valid input");
                    println!(
                        "{name} {solver_name}: W2 {:.6}, {:.1} % of the {n}² pair costs computed, {} assignment solves",
                        r.w2,
                        100.0 * r.exact_costs as f64 / (n * n) as f64,
                        r.rounds
                    );
                }
                bencher.iter(|| black_box(geometric_w2(a, b, layout, &cfg).expect("valid input")))
            });
        }
        group.finish();
    }
}

fn bench_assignment(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let cost: Vec<f64> = (0..N * N).map(|_| rng.random::<f64>()).collect();
    let mut group = c.benchmark_group("assignment");
    group.sample_size(10);
    group.bench_function(format!("uniform_random_{N}x{N}"), |bencher| {
        bencher.iter(|| black_box(linear_assignment(&cost, N).expect("valid input")))
    });
    group.finish();
}

/// One LJ-55-sized 2000×2000 run with the default config (pruned solver), printed.
fn time_lj55() {
    let layout = ParticleLayout::new(55, 3);
    let a = clouds(4, N, layout);
    let b = clouds(5, N, layout);
    let threads = rayon::current_num_threads();
    let t = Instant::now();
    let r = geometric_w2(&a, &b, layout, &GeometricW2Config::default()).expect("valid input");
    println!(
        "geometric_w2/lj55_n{N}_threads{threads}: {:.1} s (W2 {:.4}, {} exact pair costs = {:.1} % of N², {} rounds)",
        t.elapsed().as_secs_f64(),
        r.w2,
        r.exact_costs,
        100.0 * r.exact_costs as f64 / (N * N) as f64,
        r.rounds
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_assignment(&mut c);
    bench_geometric_w2(&mut c);
    c.final_summary();
    if std::env::var_os("DIFFSAMP_BENCH_LJ55").is_some() {
        time_lj55();
    }
}
