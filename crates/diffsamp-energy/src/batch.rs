//! Batched, rayon-parallel evaluation of an [`Energy`] over `[batch, dim]` slices.

use crate::{Energy, EnergyError};
use rayon::prelude::*;

/// Energies and gradients of a batch, row-major (`grads` is `[batch, dim]`).
#[derive(Clone, Debug, Default)]
pub struct EnergyBatch {
    pub energies: Vec<f64>,
    pub grads: Vec<f64>,
}

fn check_len<E: Energy + ?Sized>(
    energy: &E,
    what: &'static str,
    len: usize,
    expected: usize,
) -> Result<(), EnergyError> {
    if len != expected {
        return Err(EnergyError::Shape {
            energy: energy.name().to_string(),
            what,
            len,
            expected,
        });
    }
    Ok(())
}

fn n_rows<E: Energy + ?Sized>(energy: &E, xs: &[f64]) -> Result<usize, EnergyError> {
    let d = energy.dim();
    if d == 0 || xs.len() % d != 0 {
        return Err(EnergyError::Shape {
            energy: energy.name().to_string(),
            what: "batch",
            len: xs.len(),
            expected: d * (xs.len() / d.max(1)).max(1),
        });
    }
    Ok(xs.len() / d)
}

/// E(x_b) and ∇E(x_b) for every row b of `xs` (`[batch, dim]`), in parallel, into the
/// caller-owned `energies` (`[batch]`) and `grads` (`[batch, dim]`).
pub fn energy_and_grad_batch<E: Energy + ?Sized>(
    energy: &E,
    xs: &[f64],
    energies: &mut [f64],
    grads: &mut [f64],
) -> Result<(), EnergyError> {
    let n = n_rows(energy, xs)?;
    let d = energy.dim();
    check_len(energy, "energies", energies.len(), n)?;
    check_len(energy, "grads", grads.len(), n * d)?;
    xs.par_chunks_exact(d)
        .zip(grads.par_chunks_exact_mut(d))
        .zip(energies.par_iter_mut())
        .for_each(|((x, g), e)| *e = energy.energy_grad(x, g));
    Ok(())
}

/// E(x_b) for every row b of `xs` (`[batch, dim]`), in parallel.
pub fn energies_batch<E: Energy + ?Sized>(energy: &E, xs: &[f64]) -> Result<Vec<f64>, EnergyError> {
    let d = energy.dim();
    n_rows(energy, xs)?;
    Ok(xs.par_chunks_exact(d).map(|x| energy.energy(x)).collect())
}

impl EnergyBatch {
    /// Allocates and evaluates energies and gradients of `xs` (`[batch, dim]`).
    pub fn evaluate<E: Energy + ?Sized>(energy: &E, xs: &[f64]) -> Result<Self, EnergyError> {
        let n = n_rows(energy, xs)?;
        let mut out = EnergyBatch {
            energies: vec![0.0; n],
            grads: vec![0.0; xs.len()],
        };
        energy_and_grad_batch(energy, xs, &mut out.energies, &mut out.grads)?;
        Ok(out)
    }
}
