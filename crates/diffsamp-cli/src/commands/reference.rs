//! `diffsamp reference`: reference samples by exact sampling, MCMC (MALA/HMC, tempering) or,
//! for molecules, replica-exchange Langevin dynamics.

use crate::progress::Phase;
use anyhow::{bail, Context};
use diffsamp::energy::data::{read_npy, shared_data_file};
use diffsamp::energy::force_field::GAS_CONSTANT_KJ;
use diffsamp::energy::{energies_batch, registry, Energy, ForceFieldEnergy};
use diffsamp::io::write_npy;
use diffsamp::mcmc::diagnostics::mean_std;
use diffsamp::mcmc::md_reference::{run_md_reference, MdReferenceConfig};
use diffsamp::mcmc::progress::{Progress, Stage};
use diffsamp::mcmc::reference::{default_config_for, run_reference, ReferenceConfig};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Exact sampling when the system has an exact sampler, molecular dynamics for a force
    /// field, else MCMC.
    Auto,
    /// Exact i.i.d. sampling (gmm40*, many-well-*, mos*).
    Exact,
    /// Markov chain Monte Carlo with the system's preset or `--config`.
    Mcmc,
    /// Replica-exchange Langevin dynamics (force fields: aldp, aldp-ff14sb-obc1), from the
    /// first frame of `aldp/X100.npy`; `--config` holds `MdReferenceConfig` keys.
    Md,
}

#[derive(clap::Args)]
pub struct Args {
    /// Target system (see `diffsamp systems`).
    #[arg(long)]
    system: String,
    /// Number of samples.
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output samples `[n, dim]` (float32 .npy). A JSON summary is written beside it.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = Method::Auto)]
    method: Method,
    /// MCMC settings (TOML, keys of `ReferenceConfig`; with `--method md`, of
    /// `MdReferenceConfig`); default: the system's preset.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn load_config<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.n == 0 {
        bail!("--n must be at least 1");
    }
    let system = registry::system(&a.system)?;
    let energy = system.energy.as_ref();
    let force_field = registry::force_field(&a.system)?;
    let method = match a.method {
        Method::Exact if system.exact.is_none() => bail!(
            "system '{}' has no exact sampler; use --method mcmc",
            a.system
        ),
        Method::Md if force_field.is_none() => bail!(
            "system '{}' is no force field: molecular dynamics needs masses; use --method mcmc",
            a.system
        ),
        Method::Auto if system.exact.is_some() => Method::Exact,
        Method::Auto if force_field.is_some() => Method::Md,
        Method::Auto => Method::Mcmc,
        m => m,
    };
    let summary_path = a.out.with_extension("json");
    let summary = if let (Method::Md, Some(ff)) = (method, &force_field) {
        run_md(&a, ff)?
    } else if method == Method::Exact {
        let start = Instant::now();
        let sampler = system.exact.as_ref().expect("checked above");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
        let samples = sampler.sample(a.n, &mut rng);
        let energies = energies_batch(energy, &samples)?;
        write_npy(&a.out, &[a.n, energy.dim()], &samples, false)?;
        let (mean, std) = mean_std(&energies);
        eprintln!(
            "{} exact samples of {}: E = {mean:.4} ± {std:.4} -> {}",
            a.n,
            a.system,
            a.out.display()
        );
        serde_json::json!({
            "system": a.system, "method": "exact", "n": a.n, "seed": a.seed,
            "energy_mean": mean, "energy_std": std, "energy_evals": 0,
            "wall_seconds": start.elapsed().as_secs_f64(),
        })
    } else {
        let mut cfg: ReferenceConfig = match &a.config {
            Some(p) => load_config(p)?,
            None => default_config_for(&a.system).unwrap_or_default(),
        };
        cfg.n_samples = a.n;
        cfg.seed = a.seed;
        cfg.validate()?;
        let mut bars = StageBars::new("acc");
        let res = run_reference(energy, &cfg, &mut |p: &Progress| bars.update(p))?;
        bars.finish();
        write_npy(&a.out, &[res.n_samples(), res.dim], &res.samples, false)?;
        let (mean, std) = res.energy_mean_std();
        eprintln!(
            "{} MCMC samples of {}: E = {mean:.4} ± {std:.4}, {} energy evaluations, {:.1} s, split-R̂ {:.3} -> {}",
            res.n_samples(),
            a.system,
            res.energy_evals,
            res.wall_seconds,
            res.diagnostics.energy_split_rhat,
            a.out.display()
        );
        serde_json::json!({
            "system": a.system, "method": "mcmc", "n": res.n_samples(), "seed": a.seed,
            "energy_mean": mean, "energy_std": std, "energy_evals": res.energy_evals,
            "wall_seconds": res.wall_seconds, "temperatures": res.temperatures,
            "acceptance": res.acceptance, "swap_rates": res.swap_rates,
            "rejected_non_finite": res.rejected_non_finite,
            "diagnostics": res.diagnostics, "config": cfg,
        })
    };
    std::fs::write(&summary_path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("writing {}", summary_path.display()))?;
    Ok(())
}

/// Replica-exchange Langevin dynamics of a force field from the first fixture frame; writes
/// `[n, atoms, 3]` samples and returns the JSON summary.
fn run_md(a: &Args, ff: &ForceFieldEnergy) -> anyhow::Result<serde_json::Value> {
    let mut cfg: MdReferenceConfig = match &a.config {
        Some(p) => load_config(p)?,
        None => MdReferenceConfig::default(),
    };
    cfg.n_samples = a.n;
    cfg.seed = a.seed;
    cfg.validate()?;
    let start_file = shared_data_file("aldp/X100.npy")?;
    let frames = read_npy(&start_file)?;
    if frames.row_len() != ff.dim() {
        bail!(
            "{} holds configurations of {} coordinates, '{}' needs {}",
            start_file.display(),
            frames.row_len(),
            a.system,
            ff.dim()
        );
    }
    let kelvin: Vec<f64> = cfg
        .temperatures()
        .iter()
        .map(|t| t * ff.kt() / GAS_CONSTANT_KJ)
        .collect();
    eprintln!(
        "replica exchange on {:?} K, {:.1} ps per replica",
        kelvin.iter().map(|t| t.round()).collect::<Vec<_>>(),
        cfg.simulated_ps()
    );
    let start = Instant::now();
    let mut bars = StageBars::new("swaps");
    let res = run_md_reference(ff, &cfg, &frames.data[..ff.dim()], &mut |p: &Progress| {
        bars.update(p)
    })?;
    bars.finish();
    let wall = start.elapsed().as_secs_f64();
    let n = res.energies.len();
    write_npy(&a.out, &[n, ff.dim() / 3, 3], &res.samples, false)?;
    let (mean, std) = mean_std(&res.energies);
    eprintln!(
        "{n} MD samples of {}: E = {mean:.4} ± {std:.4}, {} energy evaluations, {wall:.1} s -> {}",
        a.system,
        res.energy_evals,
        a.out.display()
    );
    Ok(serde_json::json!({
        "system": a.system, "method": "md", "n": n, "seed": a.seed,
        "energy_mean": mean, "energy_std": std, "energy_evals": res.energy_evals,
        "wall_seconds": wall, "temperatures_kelvin": kelvin,
        "swap_rates": res.swaps.rates(), "non_finite_steps": res.non_finite,
        "simulated_ps_per_replica": cfg.simulated_ps(), "config": cfg,
    }))
}

/// One progress bar per stage (warm-up, sampling) of an MCMC or MD run; `rate` names the
/// acceptance figure (MCMC acceptance or replica-swap rate).
struct StageBars {
    rate: &'static str,
    current: Option<(Stage, Phase)>,
}

impl StageBars {
    fn new(rate: &'static str) -> Self {
        Self {
            rate,
            current: None,
        }
    }

    fn update(&mut self, p: &Progress) {
        if self.current.as_ref().map(|(s, _)| *s) != Some(p.stage) {
            self.finish();
            let name = match p.stage {
                Stage::Warmup => "warm-up",
                Stage::Sampling => "sampling",
            };
            self.current = Some((p.stage, Phase::new(name, p.total as u64)));
        }
        if let Some((_, ph)) = self.current.as_mut() {
            ph.update(
                p.step as u64,
                &format!(
                    "{} {:.2} <E> {:.3} samples {} evals {}",
                    self.rate, p.acceptance, p.mean_energy, p.samples, p.energy_evals
                ),
            );
        }
    }

    fn finish(&mut self) {
        if let Some((_, old)) = self.current.take() {
            old.finish("");
        }
    }
}
