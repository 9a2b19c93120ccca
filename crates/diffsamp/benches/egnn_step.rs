//! EGNN control network at the paper's LJ-13 size (5 layers, hidden 128, batch 512): forward
//! pass, training steps and a 1000-step Euler–Maruyama rollout, beside the bare matrix
//! multiplies that dominate them (the machine's attainable f32 matmul rate in the same run).
//!
//! Dominant flops of a forward pass: two H×H matmuls per ordered pair (n(n−1) = 156) per layer,
//! 2·512·156·128²·2·5 ≈ 2.6e10. Run: `cargo bench -p diffsamp --bench egnn_step`.
//!
//! - `forward`: v(t, x) without gradients.
//! - `train_step`: plain MSE loss against a fixed target, tch's Adam.
//! - `ram_step`: the step the Adjoint Sampling trainer takes — `ram_loss` (bridge draw of X_t
//!   given X_1 from [`HostNoise`], forward, mean (v + a)²), backward, `diffsamp::nn::Adam`.
//! - `bare_matmuls_same_flops`: the pair matmuls of one forward alone.
//! - `rollout` (timed outside criterion, whose 10-sample minimum is too long for it):
//!   `EulerMaruyama::simulate` on 1001 grid points (1000 steps) at batch 16 with [`TorchNoise`]
//!   (libtorch's `randn`, the generator the PyTorch baseline uses), COM removed every step.
//!   Prints one JSON line; repetitions from `DIFFSAMP_BENCH_ROLLOUT_REPS` (default 3, 0 skips).
//!
//! Environment: `DIFFSAMP_BENCH_THREADS` sets libtorch's intra-op threads
//! (`tch::set_num_threads`); `DIFFSAMP_BENCH_EXPORT=<file.safetensors>` writes the network's
//! parameters (`param.<name>`) with a forward pass on a small batch (`input.t`, `input.x`,
//! `output.v`), which `benches/pytorch/egnn_as_step.py --check` compares against. The PyTorch
//! side-by-side comparison: `benches/pytorch/compare.sh`.

use criterion::{Criterion, SamplingMode, Throughput};
use diffsamp::energy::Particles;
use diffsamp::methods::adjoint_sampling::ram_loss;
use diffsamp::metrics::SortedFinite;
use diffsamp::nn::egnn::{Egnn, EgnnConfig};
use diffsamp::nn::{Adam, AdamConfig};
use diffsamp::sde::{remove_com, EulerMaruyama, Geometric, HostNoise, TorchNoise};
use std::hint::black_box;
use std::time::Instant;
use tch::nn::{OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};

const BATCH: i64 = 512;
const PAIRS: i64 = 13 * 12;
const HIDDEN: i64 = 128;
const LAYERS: i64 = 5;
const LJ13: Particles = Particles { n: 13, spatial: 3 };
const ROLLOUT_BATCH: usize = 16;
const ROLLOUT_STEPS: usize = 1000;

/// Applies `DIFFSAMP_BENCH_THREADS` (when set) and returns libtorch's intra-op thread count.
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

fn lj13_network() -> (VarStore, Egnn) {
    let vs = VarStore::new(Device::Cpu);
    let net = Egnn::new(&vs.root(), LJ13, EgnnConfig::default()).expect("valid config");
    (vs, net)
}

/// Writes parameters and one forward pass for the PyTorch baseline's equivalence check.
fn export(vs: &VarStore, net: &Egnn, path: &str) {
    let t = Tensor::rand([4], (Kind::Float, Device::Cpu));
    let x = Tensor::randn([4, 39], (Kind::Float, Device::Cpu)) * 1.5;
    let v = tch::no_grad(|| net.forward(&t, &x));
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(name, p)| (format!("param.{name}"), p.detach()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.extend([
        ("input.t".to_string(), t),
        ("input.x".to_string(), x),
        ("output.v".to_string(), v),
    ]);
    Tensor::write_safetensors(&named, path).expect("write the export file");
}

fn bench_egnn(c: &mut Criterion, threads: i32) {
    tch::manual_seed(0);
    let (vs, net) = lj13_network();
    let n_params: i64 = vs.variables().values().map(|v| v.numel() as i64).sum();
    println!(r#"{{"impl":"rust","bench":"params","count":{n_params}}}"#);
    if let Ok(path) = std::env::var("DIFFSAMP_BENCH_EXPORT") {
        export(&vs, &net, &path);
    }
    let mut opt = tch::nn::Adam::default()
        .build(&vs, 1e-4)
        .expect("optimiser");
    let x = Tensor::randn([BATCH, 39], (Kind::Float, Device::Cpu));
    let t = Tensor::rand([BATCH], (Kind::Float, Device::Cpu));
    let target = Tensor::randn([BATCH, 39], (Kind::Float, Device::Cpu));
    let flops = (2 * BATCH * PAIRS * HIDDEN * HIDDEN * 2 * LAYERS) as u64;

    let mut group = c.benchmark_group("egnn_lj13_h128_l5");
    group.sample_size(10);
    // One iteration per sample: these take 0.1–3 s each.
    group.sampling_mode(SamplingMode::Flat);
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
    // The trainer's step: replay-buffer minibatch (X_1, a(X_1)) → RAM loss → diffsamp Adam.
    let (vs_ram, net_ram) = lj13_network();
    let mut adam = Adam::new(&vs_ram, AdamConfig::default()).expect("optimiser");
    let schedule = Geometric::default();
    let x1 = remove_com(
        &Tensor::randn([BATCH, 39], (Kind::Float, Device::Cpu)),
        LJ13,
    );
    let adjoint = remove_com(
        &Tensor::randn([BATCH, 39], (Kind::Float, Device::Cpu)),
        LJ13,
    );
    let mut noise = HostNoise::seeded(0);
    let mut ram_step = || {
        let loss = ram_loss(
            &net_ram,
            &schedule,
            &x1,
            &adjoint,
            Some(LJ13),
            1.0,
            &mut noise,
        );
        adam.backward_step(&loss);
    };
    // One untimed step first: allocates Adam's moments and the allocator's working set
    // (criterion's --quick mode times its first iteration without a warm-up).
    ram_step();
    group.bench_function(format!("ram_step/threads{threads}/batch{BATCH}"), |b| {
        b.iter(&mut ram_step)
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

/// 1000-step Euler–Maruyama rollout with the library's simulator, timed by hand. Under
/// `cargo test` (no `--bench` argument) it runs a 3-step smoke test instead.
fn bench_rollout(threads: i32, bench_mode: bool) {
    let reps: usize = match std::env::var("DIFFSAMP_BENCH_ROLLOUT_REPS") {
        Ok(v) => v
            .parse()
            .expect("DIFFSAMP_BENCH_ROLLOUT_REPS must be a count"),
        Err(_) => 3,
    };
    if reps == 0 {
        return;
    }
    tch::manual_seed(1);
    let (_vs, net) = lj13_network();
    let schedule = Geometric::default();
    let run = |steps: usize| {
        let em = EulerMaruyama::uniform(steps + 1, LJ13.dim(), Some(LJ13), Device::Cpu);
        let start = Instant::now();
        let out = em.simulate(&schedule, &net, ROLLOUT_BATCH, &mut TorchNoise);
        assert_eq!(out.n_steps, steps);
        let _ = black_box(out.x1);
        start.elapsed().as_secs_f64()
    };
    if !bench_mode {
        run(3);
        println!("rollout: smoke test ok (3 steps)");
        return;
    }
    run(5); // warm-up
    let samples: Vec<f64> = (0..reps).map(|_| run(ROLLOUT_STEPS)).collect();
    let list = samples
        .iter()
        .map(|s| format!("{s:.6}"))
        .collect::<Vec<_>>()
        .join(",");
    let median = SortedFinite::new(samples.iter().copied())
        .interpolated(0.5)
        .unwrap_or(f64::NAN);
    println!(
        "egnn_lj13_h128_l5/rollout/threads{threads}/batch{ROLLOUT_BATCH}/steps{ROLLOUT_STEPS}: \
         median {median:.3} s over {reps} rollouts"
    );
    println!(
        r#"{{"impl":"rust","bench":"rollout","threads":{threads},"batch":{ROLLOUT_BATCH},"steps":{ROLLOUT_STEPS},"noise":"TorchNoise","median_s":{median},"samples_s":[{list}]}}"#
    );
}

fn main() {
    diffsamp::nn::alloc::retain_freed_memory();
    let threads = configure_threads();
    // cargo bench passes --bench; cargo test runs this binary without it (criterion's test mode).
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    bench_egnn(&mut c, threads);
    bench_rollout(threads, bench_mode);
    c.final_summary();
}
