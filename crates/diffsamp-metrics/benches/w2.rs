//! Criterion benchmark of geometric W2 (AS protocol) on 2000 vs 2000 LJ-13-sized configurations, pruned vs dense OT.
//!
//! `cargo bench -p diffsamp-metrics --bench w2` runs the criterion groups (about 3–4 minutes
//! on 2 cores: every dense sample evaluates 4 million pair costs). With
//! `DIFFSAMP_BENCH_LJ55=1` it also times one LJ-55 2000×2000 geometric W2 (pruned solver,
//! the default) and prints it; that run takes minutes and is not part of criterion.

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

fn bench_geometric_w2(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    let layout = ParticleLayout::new(13, 3);
    let a = clouds(1, N, layout);
    let b = clouds(2, N, layout);
    let mut group = c.benchmark_group(format!("geometric_w2/lj13_n{N}_threads{threads}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(20));
    for (name, solver) in [
        ("pruned", OtSolver::default()),
        ("dense", OtSolver::Dense),
    ] {
        let cfg = GeometricW2Config {
            solver,
            ..Default::default()
        };
        group.bench_function(BenchmarkId::from_parameter(name), |bencher| {
            bencher.iter(|| black_box(geometric_w2(&a, &b, layout, &cfg).expect("valid input")))
        });
    }
    group.finish();
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

/// One LJ-55-sized 2000×2000 run with the default (pruned) solver, printed.
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
