//! `diffsamp sample`: fresh samples from a trained run.

use super::train::Reporter;
use anyhow::bail;
use diffsamp::io::write_npy;
use diffsamp::methods::adjoint_sampling::Run;
use diffsamp::methods::pita::PitaRun;
use diffsamp::sde::importance::ImportanceReport;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `diffsamp train` or `diffsamp pita` (finished: its last model
    /// is annealed again to the target temperature by FK-SMC with `--n` particles).
    #[arg(long)]
    run: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 2000)]
    n: usize,
    /// Output `.npy` (float32, `[n, particles, spatial]` or `[n, dim]`).
    #[arg(long)]
    out: PathBuf,
    /// Euler–Maruyama grid points, spaced as the run's `training.grid_power` says (default: the
    /// run's evaluation grid); for a PITA run, the SMC steps (default: the run's `smc.steps`).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed of the simulation noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write each sample's path-space importance log-weight (float64 `[n]`) here; costs
    /// one energy evaluation per sample. Pass it to `diffsamp eval --log-weights`.
    #[arg(long)]
    log_weights: Option<PathBuf>,
    /// For a target on internal coordinates (e.g. `aldp-phi-psi`): also write the samples as
    /// Cartesian conformers of the molecule (float32 `[n, atoms, 3]`) here.
    #[arg(long)]
    cartesian: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.n == 0 {
        bail!("--n must be at least 1");
    }
    if a.steps == Some(0) {
        bail!("--steps must be at least 1");
    }
    if PitaRun::is_run_dir(&a.run) {
        return sample_pita(&a);
    }
    let run = Run::load(&a.run)?;
    let system = run.config().system()?;
    if a.cartesian.is_some() && system.energy.embedding().is_none() {
        bail!(
            "--cartesian: '{}' has no Cartesian embedding (only targets on a molecule's internal coordinates map to conformers)",
            run.config().system
        );
    }
    let nfe = a.steps.map_or(run.config().eval_nfe(), |s| s + 1);
    let mut rep = Reporter::new();
    let (x, log_w) = match &a.log_weights {
        Some(_) => {
            let (x, w) = run.sample_weighted(a.n, nfe, a.seed, &mut |ev| rep.on(ev))?;
            (x, Some(w))
        }
        None => (run.sample(a.n, nfe, a.seed, &mut |ev| rep.on(ev))?, None),
    };
    let shape = match system.energy.point_cloud() {
        Some(p) => vec![a.n, p.n, p.spatial],
        None => vec![a.n, system.energy.dim()],
    };
    if let Some(d) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    write_npy(&a.out, &shape, &x, false)?;
    if let (Some(path), Some(w)) = (&a.log_weights, &log_w) {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)?;
        }
        write_npy(path, &[a.n], w, true)?;
        let r = ImportanceReport::from_log_weights(w, system.log_z)?;
        eprintln!("importance weights: {r} -> {}", path.display());
    }
    if let (Some(path), Some(emb)) = (&a.cartesian, system.energy.embedding()) {
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d)?;
        }
        let dim = system.energy.dim();
        let conformers: Vec<f64> = x
            .chunks_exact(dim)
            .flat_map(|q| emb.to_cartesian(q))
            .collect();
        let atoms = emb.cartesian_dim() / 3;
        write_npy(path, &[a.n, atoms, 3], &conformers, false)?;
        eprintln!("{} conformers ({atoms} atoms) -> {}", a.n, path.display());
    }
    let bad = x.iter().filter(|v| !v.is_finite()).count();
    eprintln!(
        "{} samples of {} ({} steps, epoch {}) -> {}{}",
        a.n,
        run.config().system,
        nfe - 1,
        run.trainer().epochs_done(),
        a.out.display(),
        if bad > 0 {
            format!(" ({bad} non-finite values)")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Fresh samples at a finished PITA run's target temperature.
fn sample_pita(a: &Args) -> anyhow::Result<()> {
    if a.log_weights.is_some() {
        bail!("--log-weights: a PITA run's samples carry no path-space importance weights (its FK-SMC has resampled them)");
    }
    if a.cartesian.is_some() {
        bail!("--cartesian: only runs on a molecule's internal coordinates write conformers; a PITA run's samples are already Cartesian");
    }
    let run = PitaRun::load(&a.run)?;
    let mut rep = super::pita::Reporter::default();
    let draw = run.sample(a.n, a.steps, a.seed, &mut |ev| rep.on(ev))?;
    rep.finish();
    let n = draw.energies.len();
    if let Some(d) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d)?;
    }
    write_npy(&a.out, &run.sample_shape(n), &draw.x, false)?;
    let temps = &run.config().temperatures;
    let fenced = super::pita::fence_note(draw.fenced);
    eprintln!(
        "{n} samples of {} at T = {} (FK-SMC from the T = {} model, γ = {:.3}, {} steps, {} of them weighted; ESS min {:.3}, final-resampling ESS {:.3}{fenced}; {} energy evaluations) -> {}",
        run.config().system,
        temps[temps.len() - 1],
        temps[temps.len() - 2],
        draw.gamma,
        a.steps.unwrap_or(run.config().smc.steps),
        draw.ess.len(),
        draw.ess.iter().copied().fold(1.0, f64::min),
        draw.final_ess,
        draw.energy_evals,
        a.out.display()
    );
    Ok(())
}
