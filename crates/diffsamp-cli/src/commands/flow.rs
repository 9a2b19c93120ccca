//! `diffsamp flow`: flow-matching pretraining, Adjoint Matching fine-tuning, and sampling.

use crate::progress::Phase;
use anyhow::Context;
use diffsamp::io::write_npy;
use diffsamp::methods::adjoint_matching::config::from_toml;
use diffsamp::methods::adjoint_matching::{
    AdjointMethod, FinetuneConfig, FinetuneRun, FlowEvent, PretrainConfig, PretrainRun,
};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Train a flow-matching model (MLP velocity) on samples of a target.
    Pretrain(PretrainArgs),
    /// Fine-tune a flow model toward p_base · exp(λ r) with Adjoint Matching.
    Finetune(FinetuneArgs),
    /// Draw samples from a fine-tuned run (flow ODE, or the memoryless SDE).
    Sample(SampleArgs),
}

#[derive(clap::Args)]
struct PretrainArgs {
    /// A registered system with an exact sampler (e.g. gmm40) or a .npy file [n, dim].
    #[arg(long)]
    target: Option<String>,
    /// Run config (TOML); flags override it. Optional: defaults, or --out's saved config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory: created, or resumed from its last checkpoint.
    #[arg(long)]
    out: PathBuf,
    /// Adam steps.
    #[arg(long)]
    steps: Option<usize>,
    /// libtorch threads.
    #[arg(long)]
    torch_threads: Option<usize>,
}

#[derive(clap::Args)]
struct FinetuneArgs {
    /// Base model: a pretraining run directory, gaussian:D or exact:SYSTEM.
    #[arg(long)]
    base: Option<String>,
    /// Reward spec: linear:W, quadratic:C[;k=K], energy:SYSTEM or boltzmann:SYSTEM.
    #[arg(long)]
    reward: Option<String>,
    /// Reward multiplier λ.
    #[arg(long, allow_hyphen_values = true)]
    lambda: Option<f64>,
    /// Run config (TOML); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory: created, or resumed from its last checkpoint.
    #[arg(long)]
    out: PathBuf,
    /// Fine-tuning iterations.
    #[arg(long)]
    iterations: Option<usize>,
    /// Adjoint: lean (default) or basic.
    #[arg(long)]
    adjoint: Option<AdjointMethod>,
    /// Seed of the fine-tuning loop (training.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// libtorch threads.
    #[arg(long)]
    torch_threads: Option<usize>,
}

#[derive(clap::Args)]
struct SampleArgs {
    /// A fine-tuning run directory.
    #[arg(long)]
    run: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Output .npy file (float32 [n, dim]).
    #[arg(long)]
    out: PathBuf,
    /// Sample with the memoryless SDE the model was trained on instead of its flow ODE.
    #[arg(long)]
    sde: bool,
    /// ODE steps (default: the run's evaluation setting).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn saved_or<C: for<'de> serde::Deserialize<'de>>(
    config: &Option<PathBuf>,
    out: &Path,
) -> anyhow::Result<Option<C>> {
    let path = match config {
        Some(p) => p.clone(),
        None if out.join("config.toml").exists() => out.join("config.toml"),
        None => return Ok(None),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(from_toml(&text, &path)?))
}

/// Progress bar over the steps of a flow run.
fn reporter(label: &'static str) -> impl FnMut(FlowEvent) {
    let mut phase: Option<Phase> = None;
    move |ev| match ev {
        FlowEvent::Started { done, total } => {
            if done > 0 {
                eprintln!("resuming at {done} of {total}");
            }
            let mut p = Phase::new(label, total as u64);
            p.update(done as u64, "");
            phase = Some(p);
        }
        FlowEvent::Step { done, line } => {
            if let Some(p) = phase.as_mut() {
                p.update(done as u64, line);
            }
        }
        FlowEvent::Status(s) => {
            if let Some(p) = phase.take() {
                p.finish("");
            }
            eprintln!("{s} ...");
        }
    }
}

fn pretrain(a: PretrainArgs) -> anyhow::Result<()> {
    let mut config = match (saved_or::<PretrainConfig>(&a.config, &a.out)?, &a.target) {
        (Some(c), _) => c,
        (None, Some(t)) => PretrainConfig::for_target(t),
        (None, None) => anyhow::bail!("give --target (or --config)"),
    };
    if let Some(t) = a.target {
        config.target = t;
    }
    if let Some(s) = a.steps {
        config.steps = s;
    }
    if a.torch_threads.is_some() {
        config.threads = a.torch_threads;
    }
    let mut run = PretrainRun::open(config, &a.out)?;
    eprintln!(
        "flow matching on {}: run directory {}",
        run.config().target,
        a.out.display()
    );
    let report = run.train(&mut reporter("pretraining"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "samples -> {}\nplots -> {}",
        a.out.join("samples.npy").display(),
        a.out.join("plots").display()
    );
    Ok(())
}

fn finetune(a: FinetuneArgs) -> anyhow::Result<()> {
    let mut config = match saved_or::<FinetuneConfig>(&a.config, &a.out)? {
        Some(c) => c,
        None => match (&a.base, &a.reward) {
            (Some(b), Some(r)) => FinetuneConfig::new(b, r),
            _ => anyhow::bail!("give --base and --reward (or --config)"),
        },
    };
    if let Some(b) = a.base {
        config.base = b;
    }
    if let Some(r) = a.reward {
        config.reward = r;
    }
    if let Some(l) = a.lambda {
        config.training.lambda = l;
    }
    if let Some(i) = a.iterations {
        config.iterations = i;
    }
    if let Some(m) = a.adjoint {
        config.training.adjoint = m;
    }
    if let Some(s) = a.seed {
        config.training.seed = s;
    }
    if a.torch_threads.is_some() {
        config.threads = a.torch_threads;
    }
    let mut run = FinetuneRun::open(config, &a.out)?;
    eprintln!(
        "Adjoint Matching: base {}, reward {}, λ = {}: run directory {}",
        run.config().base,
        run.config().reward,
        run.config().training.lambda,
        a.out.display()
    );
    let r = run.train(&mut reporter("fine-tuning"))?;
    println!(
        "reward: base {:.4} ± {:.4} (ODE), {:.4} ± {:.4} (SDE) -> fine-tuned {:.4} ± {:.4} (ODE), {:.4} ± {:.4} (SDE)",
        r.base.mean_reward,
        r.base.reward_se,
        r.base_sde.mean_reward,
        r.base_sde.reward_se,
        r.ode.mean_reward,
        r.ode.reward_se,
        r.sde.mean_reward,
        r.sde.reward_se
    );
    println!(
        "diversity (mean pairwise distance): base {:.4}, fine-tuned {:.4}; KL estimate {:.4}",
        r.base.diversity, r.ode.diversity, r.kl_estimate
    );
    for (what, b) in [("ODE", &r.base_tilt), ("SDE", &r.base_tilt_sde)] {
        if let Some(b) = b {
            println!(
                "tilt of this base (importance-weighted base {what} samples): reward {:.4} ± {:.4}, ESS {:.0}",
                b.mean_reward, b.reward_se, b.ess
            );
        }
    }
    if let Some(t) = &r.exact_tilt {
        println!(
            "exact tilt: reward {:.4} ± {:.4}; max |mode weight error| ODE {:.4}, SDE {:.4}",
            t.mean_reward_exact, t.reward_se_exact, t.max_weight_error_ode, t.max_weight_error_sde
        );
        if let (Some(o), Some(f)) = (t.sinkhorn_ode, t.sinkhorn_floor) {
            println!("Sinkhorn divergence to the exact tilt: {o:.4} (exact-vs-exact floor {f:.4})");
        }
    }
    if let Some(b) = &r.boltzmann {
        print!("{}", b.table());
    }
    eprintln!(
        "report -> {}\nsamples -> {}\nplots -> {}",
        a.out.join("final.json").display(),
        a.out.join("samples.npy").display(),
        a.out.join("plots").display()
    );
    Ok(())
}

fn sample(a: SampleArgs) -> anyhow::Result<()> {
    if a.n == 0 {
        anyhow::bail!("--n must be at least 1");
    }
    if a.steps == Some(0) {
        anyhow::bail!("--steps must be at least 1");
    }
    let run = FinetuneRun::load(&a.run)?;
    let steps = a.steps.unwrap_or(run.config().evaluation.ode_steps);
    let x = run.sample(a.n, a.sde, steps, a.seed);
    let dim = x.len() / a.n;
    write_npy(&a.out, &[a.n, dim], &x, false)?;
    eprintln!("{} samples -> {}", a.n, a.out.display());
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.command {
        Command::Pretrain(p) => pretrain(p),
        Command::Finetune(f) => finetune(f),
        Command::Sample(s) => sample(s),
    }
}
