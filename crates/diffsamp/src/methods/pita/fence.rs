//! An outlier fence on the true energies of a stage's new samples (`final_energy_fence`).
//!
//! The annealed SDE occasionally ends in a clash: two particles nearly on top of each other,
//! with energies of 10³–10¹⁶ where the stage's bulk lies within a few tens of kT. The
//! importance-weighted final resampling removes them, but its weights use the learned energy
//! at σ_min and pull the whole stage colder (docs/RESULTS.md, PITA). The fence removes only
//! the far tail and leaves the bulk unweighted:
//!
//! ```text
//! keep x  ⇔  E(x) finite and E(x) ≤ Q₃ + k (Q₃ − Q₁)
//! ```
//!
//! with Q₁, Q₃ the quartiles of the finite energies of the population (Tukey's upper fence;
//! k = 3 is his "far out"). For a Gaussian energy the true distribution loses a fraction
//! 1 − Φ(0.674 + 1.349 k) of its mass, 1.2·10⁻⁶ at k = 3.

use diffsamp_metrics::SortedFinite;

/// Q₃ + k (Q₃ − Q₁) of the finite entries of `energies` (linear interpolation between order
/// statistics); `None` when none is finite.
pub fn upper_fence(energies: &[f64], k: f64) -> Option<f64> {
    let e = SortedFinite::new(energies.iter().copied());
    let (q1, q3) = (e.interpolated(0.25)?, e.interpolated(0.75)?);
    Some(q3 + k * (q3 - q1))
}

/// Indices of the samples the fence keeps, in order.
pub fn kept(energies: &[f64], k: f64) -> Vec<usize> {
    match upper_fence(energies, k) {
        None => Vec::new(),
        Some(cap) => energies
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_finite() && **e <= cap)
            .map(|(i, _)| i)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn fence_of_a_known_sample() {
        // 0, 1, …, 8: Q1 = 2, Q3 = 6, so k = 1.5 puts the fence at 12.
        let e: Vec<f64> = (0..9).map(f64::from).collect();
        assert_eq!(upper_fence(&e, 1.5), Some(12.0));
        assert_eq!(upper_fence(&e, 0.0), Some(6.0));
        // Interpolated quartiles: 0, 1, 2, 3 → Q1 = 0.75, Q3 = 2.25.
        assert_eq!(upper_fence(&[3.0, 0.0, 2.0, 1.0], 2.0), Some(5.25));
    }

    #[test]
    fn clashes_and_non_finite_energies_are_dropped() {
        let mut e: Vec<f64> = (0..9).map(f64::from).collect();
        e.extend([1e16, f64::NAN, f64::INFINITY, 12.0, 12.5]);
        // Finite: 0…8, 12, 12.5, 1e16, so Q1 = 2.75, Q3 = 9 and the fence lies at 18.375.
        assert_eq!(upper_fence(&e, 1.5), Some(18.375));
        let want: Vec<usize> = (0..9).chain([12, 13]).collect();
        assert_eq!(kept(&e, 1.5), want);
        assert!(kept(&[f64::NAN, f64::INFINITY], 3.0).is_empty());
    }

    #[test]
    fn gaussian_bulk_is_kept() {
        // 100 000 standard normal draws: the fence at k = 3 lies at 4.72 σ, beyond which
        // 1.2·10⁻⁶ of the mass lies, so the expected number dropped is 0.12 and three or
        // more has probability < 3·10⁻⁴ (Poisson).
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let e: Vec<f64> = (0..100_000)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let cap = upper_fence(&e, 3.0).unwrap();
        let expected = 0.674_489_75 + 3.0 * 1.348_979_5;
        // Quartile standard error ≈ 1.36 / √n ≈ 0.004; the fence's ≈ 7 times that.
        assert!((cap - expected).abs() < 0.05, "fence {cap} vs {expected}");
        assert!(e.len() - kept(&e, 3.0).len() <= 2);
    }
}
