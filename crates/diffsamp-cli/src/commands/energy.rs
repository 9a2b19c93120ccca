//! `diffsamp energy`: E and ∇E of configurations read from a .npy file.

use anyhow::{bail, Context};
use diffsamp::energy::{registry, EnergyBatch, Tempered};
use diffsamp::io::{read_npy, write_npy};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Target system (see `diffsamp systems`).
    #[arg(long)]
    system: String,
    /// Configurations, `[N, dim]` or `[N, particles, spatial]`.
    #[arg(long)]
    input: PathBuf,
    /// Output energies `[N]` (float64).
    #[arg(long)]
    out: PathBuf,
    /// Also write gradients, same shape as the input (float64).
    #[arg(long)]
    grad: Option<PathBuf>,
    /// Relative temperature T: E/T is reported.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let energy = Tempered::new(registry::by_name(&a.system)?, a.temperature)?;
    let arr = read_npy(&a.input)?;
    let dim = diffsamp::energy::Energy::dim(&energy);
    let n = arr.shape.first().copied().unwrap_or(0);
    if arr.shape.len() < 2 || n * dim != arr.data.len() {
        bail!(
            "{}: shape {:?} does not fit system '{}' (dimension {dim})",
            a.input.display(),
            arr.shape,
            a.system
        );
    }
    if let Some(row) = arr
        .data
        .chunks_exact(dim)
        .position(|r| r.iter().any(|v| !v.is_finite()))
    {
        bail!("{}: row {row} contains NaN or inf", a.input.display());
    }
    let out = EnergyBatch::evaluate(&energy, &arr.data).context("evaluating energies")?;
    write_npy(&a.out, &[n], &out.energies, true)?;
    if let Some(g) = &a.grad {
        write_npy(g, &arr.shape, &out.grads, true)?;
    }
    let mean = out.energies.iter().sum::<f64>() / n.max(1) as f64;
    eprintln!(
        "{n} configurations, mean energy {mean:.4} kT -> {}",
        a.out.display()
    );
    Ok(())
}
