//! One Adjoint Matching fine-tuning iteration ([`FineTuner::iteration`]) at the paper's
//! settings: K = 40 memoryless steps, batch 512, loss on 10 random early + the last 10 steps,
//! running 0.99-quantile clipping, Adam (lr 1e-4); base and residual are MLPs of hidden 128,
//! 3 hidden layers, 16 Fourier frequencies (frozen base + trainable residual), reward
//! r = −½‖x − 0.5‖², state dimensions 2 and 50.
//!
//! Run: `cargo bench -p diffsamp --bench am_step`; `DIFFSAMP_BENCH_THREADS` sets libtorch's
//! intra-op threads. The PyTorch side by side (same network, same work, same libtorch):
//! `benches/pytorch/compare_am.sh`.

use criterion::{Criterion, SamplingMode};
use diffsamp::methods::adjoint_matching::{Base, FineTuner, FinetuneSettings, Reward};
use diffsamp::nn::{Mlp, MlpConfig};
use tch::nn::VarStore;
use tch::Device;

fn configure_threads() -> i32 {
    if let Ok(v) = std::env::var("DIFFSAMP_BENCH_THREADS") {
        let n: i32 = v
            .parse()
            .expect("DIFFSAMP_BENCH_THREADS must be a positive integer");
        assert!(n > 0, "DIFFSAMP_BENCH_THREADS must be a positive integer");
        tch::set_num_threads(n);
    }
    tch::get_num_threads()
}

fn tuner(dim: usize) -> FineTuner {
    tch::manual_seed(0);
    let mut vs = VarStore::new(Device::Cpu);
    let net = Mlp::new(&vs.root(), dim, MlpConfig::default()).expect("valid config");
    vs.freeze();
    let settings = FinetuneSettings {
        learning_rate: 1e-4,
        ..FinetuneSettings::default()
    };
    let reward = Reward::parse("quadratic:0.5", dim).expect("valid reward");
    FineTuner::new(
        Base::Network { vs, net },
        reward,
        MlpConfig::default(),
        settings,
        Device::Cpu,
    )
    .expect("valid settings")
}

fn main() {
    diffsamp::nn::alloc::retain_freed_memory();
    let threads = configure_threads();
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("am_iteration");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for dim in [2usize, 50] {
        let mut ft = tuner(dim);
        group.bench_function(format!("dim{dim}_threads{threads}"), |b| {
            b.iter(|| ft.iteration().expect("finite iteration"))
        });
    }
    group.finish();
    c.final_summary();
}
