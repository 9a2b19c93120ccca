//! Particle layout and centre-of-mass helpers for particle systems.

/// Layout of a particle system: each configuration is `[n, spatial]`, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Particles {
    /// Number of particles.
    pub n: usize,
    /// Spatial dimension (2 or 3).
    pub spatial: usize,
}

impl Particles {
    /// The layout of `n` particles in `spatial` dimensions; fails (naming `n_particles` or
    /// `spatial`) on fewer than 2 particles or a zero spatial dimension.
    pub fn checked(n: usize, spatial: usize) -> Result<Self, crate::EnergyError> {
        let bad = |name, value: usize, why| {
            Err(crate::EnergyError::InvalidParameter {
                name,
                value: value.to_string(),
                why,
            })
        };
        if n < 2 {
            return bad("n_particles", n, "need at least 2 particles");
        }
        if spatial == 0 {
            return bad("spatial", spatial, "spatial dimension must be positive");
        }
        Ok(Self { n, spatial })
    }

    /// Total dimension n · spatial.
    pub fn dim(&self) -> usize {
        self.n * self.spatial
    }

    /// Centre of mass x̄ = (1/n) Σ_i x_i (unweighted) of one configuration.
    pub fn com(&self, x: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; self.spatial];
        for p in x.chunks_exact(self.spatial) {
            for (ci, pi) in c.iter_mut().zip(p) {
                *ci += pi;
            }
        }
        let inv = 1.0 / self.n as f64;
        c.iter_mut().for_each(|v| *v *= inv);
        c
    }

    /// Projects one configuration onto the zero-COM subspace in place: x_i ← x_i − x̄.
    pub fn remove_com(&self, x: &mut [f64]) {
        let c = self.com(x);
        for p in x.chunks_exact_mut(self.spatial) {
            for (pi, ci) in p.iter_mut().zip(&c) {
                *pi -= ci;
            }
        }
    }

    /// [`Particles::remove_com`] on every row of a `[batch, dim]` slice.
    pub fn remove_com_batch(&self, xs: &mut [f64]) {
        for x in xs.chunks_exact_mut(self.dim()) {
            self.remove_com(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_layouts_name_the_bad_parameter() {
        assert_eq!(
            Particles::checked(4, 2).unwrap(),
            Particles { n: 4, spatial: 2 }
        );
        let err = Particles::checked(1, 3).unwrap_err().to_string();
        assert!(
            err.contains("n_particles") && err.contains("at least 2"),
            "{err}"
        );
        let err = Particles::checked(3, 0).unwrap_err().to_string();
        assert!(err.contains("spatial"), "{err}");
    }

    #[test]
    fn remove_com_zeroes_the_mean() {
        let p = Particles { n: 3, spatial: 2 };
        let mut x = vec![1.0, 2.0, 3.0, 5.0, -1.0, 2.0];
        p.remove_com(&mut x);
        let c = p.com(&x);
        assert!(c.iter().all(|v| v.abs() < 1e-15));
        assert!((x[0] - (1.0 - 1.0)).abs() < 1e-15);
        assert!((x[1] - (2.0 - 3.0)).abs() < 1e-15);
    }
}
