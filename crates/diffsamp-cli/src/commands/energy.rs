//! `diffsamp energy`: E and ∇E of configurations read from a .npy file.

use anyhow::{bail, Context};
use diffsamp::energy::force_field::Term;
use diffsamp::energy::{registry, EnergyBatch, Tempered};
use diffsamp::io::{read_npy, write_npy};
use diffsamp::metrics::SortedFinite;
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Force fields only: write each configuration's energy split by term (bonds, angles,
    /// torsions, nonbonded, gb; kT / T) to this CSV and print the terms' quantiles.
    #[arg(long)]
    terms: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let field = match &a.terms {
        Some(_) => Some(registry::force_field(&a.system)?.with_context(|| {
            format!(
                "--terms splits a force field's energy; '{}' is not a force field",
                a.system
            )
        })?),
        None => None,
    };
    // With --terms the force field is already loaded; it is the system's energy too.
    let base: Box<dyn diffsamp::energy::Energy> = match &field {
        Some(f) => Box::new(f.clone()),
        None => registry::by_name(&a.system)?,
    };
    let energy = Tempered::new(base, a.temperature)?;
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
    if let (Some(path), Some(field)) = (&a.terms, field) {
        let rows = arr
            .data
            .par_chunks_exact(dim)
            .map(|x| field.term_energies(x).map(|t| t.map(|u| u / a.temperature)))
            .collect::<Result<Vec<_>, _>>()?;
        write_terms(path, &rows)?;
        print_term_quantiles(&rows);
    }
    Ok(())
}

/// One CSV row per configuration: `row,bonds,angles,torsions,nonbonded,gb,total`.
fn write_terms(path: &Path, rows: &[[f64; 5]]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let names: Vec<&str> = Term::ALL.iter().map(|t| t.name()).collect();
    writeln!(w, "row,{},total", names.join(","))?;
    for (i, t) in rows.iter().enumerate() {
        let cols: Vec<String> = t.iter().map(|v| format!("{v:.6e}")).collect();
        writeln!(w, "{i},{},{:.6e}", cols.join(","), t.iter().sum::<f64>())?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("energy terms -> {}", path.display());
    Ok(())
}

/// The 10 %, 50 % and 90 % quantiles of each term, one line per term.
fn print_term_quantiles(rows: &[[f64; 5]]) {
    if rows.is_empty() {
        return;
    }
    eprintln!("term        10%          50%          90%   (kT)");
    for (k, term) in Term::ALL.iter().enumerate() {
        let v = SortedFinite::new(rows.iter().map(|t| t[k]));
        let q = |p: f64| v.nearest(p).unwrap_or(f64::NAN);
        eprintln!(
            "{:<10} {:>11.4e}  {:>11.4e}  {:>11.4e}",
            term.name(),
            q(0.1),
            q(0.5),
            q(0.9)
        );
    }
}
