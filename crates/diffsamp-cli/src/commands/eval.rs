//! `diffsamp eval`: metrics of generated samples against reference samples.

use anyhow::{bail, Context};
use diffsamp::energy::registry;
use diffsamp::evaluate::{evaluate, write_plots, EvalOptions};
use diffsamp::io::{load_resampled, load_samples, read_npy};
use diffsamp::metrics::SinkhornConfig;
use diffsamp::sde::importance::MIN_USEFUL_ESS;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Target system (see `diffsamp systems`).
    #[arg(long)]
    system: String,
    /// Generated samples (.npy, `[N, dim]` or `[N, particles, spatial]`).
    #[arg(long)]
    samples: PathBuf,
    /// Reference samples (same layout).
    #[arg(long)]
    reference: PathBuf,
    /// Samples drawn from each set (seeded, without replacement); 0 = all (min of both sizes).
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Seed of the subsampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Entropic regularisation ε of the Sinkhorn metrics (vector targets); 0 skips them.
    #[arg(long, default_value_t = 1e-3)]
    sinkhorn_eps: f64,
    /// Write every figure as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write PNG plots into this directory.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Importance log-weights of the generated samples (`diffsamp sample --log-weights`): the
    /// samples are first importance-resampled (systematic, seeded by `--seed`) to as many rows.
    #[arg(long)]
    log_weights: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if !(a.sinkhorn_eps >= 0.0 && a.sinkhorn_eps.is_finite()) {
        bail!("--sinkhorn-eps must be ≥ 0, got {}", a.sinkhorn_eps);
    }
    let system = registry::system(&a.system)?;
    let gen = match &a.log_weights {
        Some(w) => {
            let energy = system.energy.as_ref();
            let n_rows = read_npy(w).context("importance log-weights")?.data.len();
            let (gen, report) = load_resampled(&a.samples, w, energy, n_rows, a.seed, system.log_z)
                .context("importance-resampling the generated samples")?;
            eprintln!("importance weights: {report}; evaluating the resampled set");
            let ess = report.effective_sample_size();
            if ess < MIN_USEFUL_ESS {
                eprintln!(
                    "warning: an ESS of {ess:.1} samples: a few samples fill the resampled set \
                     (its figures mean little, and its Sinkhorn metrics converge slowly)"
                );
            }
            gen
        }
        None => load_samples(&a.samples, system.energy.as_ref()).context("generated samples")?,
    };
    let reference =
        load_samples(&a.reference, system.energy.as_ref()).context("reference samples")?;
    let opts = EvalOptions {
        n: (a.n > 0).then_some(a.n),
        seed: a.seed,
        sinkhorn: (a.sinkhorn_eps > 0.0).then(|| SinkhornConfig {
            epsilon: a.sinkhorn_eps,
            ..SinkhornConfig::default()
        }),
        ..EvalOptions::default()
    };
    eprintln!(
        "evaluating {} samples of {} against {} reference samples ...",
        gen.n.min(opts.n.unwrap_or(usize::MAX)),
        a.system,
        reference.n
    );
    let (report, data) = evaluate(&system, &gen, &reference, &opts)?;
    print!("{}", report.table());
    if let Some(p) = &a.json {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?;
        eprintln!("metrics -> {}", p.display());
    }
    if let Some(dir) = &a.plots {
        for p in write_plots(dir, &system, &data)? {
            eprintln!("plot -> {}", p.display());
        }
    }
    Ok(())
}
