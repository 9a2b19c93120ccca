//! EGNN control network at the paper's LJ-13 size (5 layers, hidden 128, batch 512): one Adam
//! training step and one forward pass, beside the bare matrix multiplies that dominate them
//! (the machine's attainable f32 matmul rate in the same run).
//!
//! Dominant flops of a forward pass: two H×H matmuls per ordered pair (n(n−1) = 156) per layer,
//! 2·512·156·128²·2·5 ≈ 2.6e10. Run: `cargo bench -p diffsamp --bench egnn_step`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diffsamp::energy::Particles;
use diffsamp::nn::egnn::{Egnn, EgnnConfig};
use std::hint::black_box;
use tch::nn::{OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 512;
const PAIRS: i64 = 13 * 12;
const HIDDEN: i64 = 128;
const LAYERS: i64 = 5;

fn bench_egnn(c: &mut Criterion) {
    diffsamp::nn::alloc::retain_freed_memory();
    tch::manual_seed(0);
    let threads = tch::get_num_threads();
    let vs = VarStore::new(Device::Cpu);
    let net = Egnn::new(
        &vs.root(),
        Particles { n: 13, spatial: 3 },
        EgnnConfig::default(),
    )
    .expect("valid config");
    let mut opt = tch::nn::Adam::default()
        .build(&vs, 1e-4)
        .expect("optimiser");
    let x = Tensor::randn([BATCH, 39], (Kind::Float, Device::Cpu));
    let t = Tensor::rand([BATCH], (Kind::Float, Device::Cpu));
    let target = Tensor::randn([BATCH, 39], (Kind::Float, Device::Cpu));
    let flops = (2 * BATCH * PAIRS * HIDDEN * HIDDEN * 2 * LAYERS) as u64;

    let mut group = c.benchmark_group("egnn_lj13_h128_l5");
    group.sample_size(10);
    group.throughput(Throughput::Elements(flops));
    group.bench_function(format!("forward/threads{threads}/batch{BATCH}"), |b| {
        b.iter(|| black_box(tch::no_grad(|| net.forward(&t, &x))))
    });
    group.bench_function(format!("train_step/threads{threads}/batch{BATCH}"), |b| {
        b.iter(|| {
            let loss = (net.forward(&t, &x) - &target).square().mean(Kind::Float);
            opt.backward_step(&loss);
        })
    });
    let a = Tensor::randn([BATCH * PAIRS, HIDDEN], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([HIDDEN, HIDDEN], (Kind::Float, Device::Cpu));
    group.bench_function(format!("bare_matmuls_same_flops/threads{threads}"), |b| {
        b.iter(|| {
            for _ in 0..2 * LAYERS {
                let _ = black_box(a.matmul(&w));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_egnn);
criterion_main!(benches);
