//! Multi-particle double-well pair potential (DW-4: 4 particles in 2-D).

use crate::{Energy, EnergyError, Particles};

/// Softening added to squared distances: d_ij = sqrt(‖x_i − x_j‖² + 1e-8).
pub const DISTANCE_SOFTENING: f64 = 1e-8;

/// Parameters of the pair potential
/// u(d) = a (d − d0) + b (d − d0)² + c (d − d0)⁴,
/// E(x) = Σ_{i<j} u(d_ij), d_ij = sqrt(‖x_i − x_j‖² + 1e-8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DoubleWellParams {
    /// Number of particles n (≥ 2).
    pub n_particles: usize,
    /// Spatial dimension of each particle (≥ 1).
    pub spatial: usize,
    /// Linear coefficient a.
    pub a: f64,
    /// Quadratic coefficient b.
    pub b: f64,
    /// Quartic coefficient c (> 0 keeps E bounded below).
    pub c: f64,
    /// Offset d0 (the distance around which the two wells sit).
    pub d0: f64,
}

impl DoubleWellParams {
    /// DW-4: 4 particles in 2-D, u(d) = 0.9 (d − 4)⁴ − 4 (d − 4)².
    pub const DW4: Self = Self {
        n_particles: 4,
        spatial: 2,
        a: 0.0,
        b: -4.0,
        c: 0.9,
        d0: 4.0,
    };
}

/// Double-well pair energy over all unordered particle pairs (see [`DoubleWellParams`]).
/// Translation-, rotation- and permutation-invariant; configurations are `[n, spatial]`.
#[derive(Clone, Debug)]
pub struct DoubleWell {
    params: DoubleWellParams,
    name: String,
}

impl DoubleWell {
    /// A double-well system named `name`. Fails on fewer than 2 particles, a zero spatial
    /// dimension or non-finite coefficients.
    pub fn new(name: impl Into<String>, params: DoubleWellParams) -> Result<Self, EnergyError> {
        Particles::checked(params.n_particles, params.spatial)?;
        for (n, v) in [
            ("a", params.a),
            ("b", params.b),
            ("c", params.c),
            ("d0", params.d0),
        ] {
            if !v.is_finite() {
                return Err(EnergyError::InvalidParameter {
                    name: n,
                    value: v.to_string(),
                    why: "must be finite",
                });
            }
        }
        Ok(Self {
            params,
            name: name.into(),
        })
    }

    /// DW-4 (`"dw4"`, d = 8): E = Σ_{i<j} [0.9 (d_ij − 4)⁴ − 4 (d_ij − 4)²].
    pub fn dw4() -> Self {
        Self {
            params: DoubleWellParams::DW4,
            name: "dw4".into(),
        }
    }

    /// DW-2 (`"dw2"`, d = 4): two particles in 2-D with DW-4's pair potential, one pair of
    /// DW-4 (exactly sampleable by radial quadrature: [`crate::PairQuadrature`]).
    pub fn dw2() -> Self {
        Self {
            params: DoubleWellParams {
                n_particles: 2,
                ..DoubleWellParams::DW4
            },
            name: "dw2".into(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &DoubleWellParams {
        &self.params
    }

    /// u(d) and u'(d).
    #[inline]
    fn pair(&self, d: f64) -> (f64, f64) {
        let p = &self.params;
        let r = d - p.d0;
        let r2 = r * r;
        (
            p.a * r + p.b * r2 + p.c * r2 * r2,
            p.a + 2.0 * p.b * r + 4.0 * p.c * r2 * r,
        )
    }
}

impl Energy for DoubleWell {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.params.n_particles * self.params.spatial
    }

    fn particles(&self) -> Option<Particles> {
        Some(Particles {
            n: self.params.n_particles,
            spatial: self.params.spatial,
        })
    }

    /// ∇_{x_i} E = Σ_{j≠i} u'(d_ij) (x_i − x_j) / d_ij.
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dim());
        debug_assert_eq!(grad.len(), self.dim());
        let (n, k) = (self.params.n_particles, self.params.spatial);
        grad.fill(0.0);
        let mut e = 0.0;
        for i in 0..n {
            let xi = &x[i * k..(i + 1) * k];
            for j in (i + 1)..n {
                let xj = &x[j * k..(j + 1) * k];
                let r2: f64 = xi.iter().zip(xj).map(|(a, b)| (a - b) * (a - b)).sum();
                let d = (r2 + DISTANCE_SOFTENING).sqrt();
                let (u, du) = self.pair(d);
                e += u;
                let s = du / d;
                for c in 0..k {
                    let f = s * (xi[c] - xj[c]);
                    grad[i * k + c] += f;
                    grad[j * k + c] -= f;
                }
            }
        }
        e
    }

    fn energy(&self, x: &[f64]) -> f64 {
        debug_assert_eq!(x.len(), self.dim());
        let (n, k) = (self.params.n_particles, self.params.spatial);
        let mut e = 0.0;
        for i in 0..n {
            for j in (i + 1)..n {
                let r2: f64 = (0..k).map(|c| (x[i * k + c] - x[j * k + c]).powi(2)).sum();
                e += self.pair((r2 + DISTANCE_SOFTENING).sqrt()).0;
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{read_npy, shared_data_file};
    use crate::testutil::*;

    #[test]
    fn pair_formula_at_known_distances() {
        let e = DoubleWell::dw4();
        // Two particles at distance 5 and two far apart would interact too; use a 2-particle
        // system with the same parameters instead.
        let two = DoubleWell::new(
            "dw2",
            DoubleWellParams {
                n_particles: 2,
                ..DoubleWellParams::DW4
            },
        )
        .unwrap();
        let x = [0.0, 0.0, 5.0, 0.0];
        let d = (25.0f64 + 1e-8).sqrt();
        let want = 0.9 * (d - 4.0).powi(4) - 4.0 * (d - 4.0).powi(2);
        assert!((two.energy(&x) - want).abs() < 1e-12);
        assert_eq!(e.dim(), 8);
        assert_eq!(e.particles(), Some(Particles { n: 4, spatial: 2 }));
        // Square of side 4 + 2 diagonals 4√2.
        let sq = [0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 4.0];
        let u = |d: f64| 0.9 * (d - 4.0).powi(4) - 4.0 * (d - 4.0).powi(2);
        let want = 4.0 * u((16.0f64 + 1e-8).sqrt()) + 2.0 * u((32.0f64 + 1e-8).sqrt());
        assert!((e.energy(&sq) - want).abs() < 1e-10);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let e = DoubleWell::dw4();
        let mut r = rng(1);
        for _ in 0..10 {
            let x = normal_vec(&mut r, 8, 0.0, 2.0);
            assert_grad_fd(&e, &x, 1e-6);
        }
        let e3 = DoubleWell::new(
            "dw-5x3",
            DoubleWellParams {
                n_particles: 5,
                spatial: 3,
                a: 0.3,
                ..DoubleWellParams::DW4
            },
        )
        .unwrap();
        for _ in 0..5 {
            let x = normal_vec(&mut r, 15, 0.0, 2.0);
            assert_grad_fd(&e3, &x, 1e-6);
        }
    }

    #[test]
    fn invariant_under_rotation_permutation_translation() {
        let e = DoubleWell::dw4();
        let mut r = rng(2);
        for _ in 0..10 {
            let x = normal_vec(&mut r, 8, 0.0, 2.0);
            let e0 = e.energy(&x);
            let tol = 1e-10 * (1.0 + e0.abs());
            let rot = random_rotation(&mut r, 2);
            assert!((e.energy(&rotate(&x, &rot, 2)) - e0).abs() < tol);
            let perm = random_permutation(&mut r, 4);
            assert!((e.energy(&permute(&x, &perm, 2)) - e0).abs() < tol);
            let shift = normal_vec(&mut r, 2, 0.0, 3.0);
            let xt: Vec<f64> = x
                .iter()
                .enumerate()
                .map(|(i, v)| v + shift[i % 2])
                .collect();
            assert!((e.energy(&xt) - e0).abs() < tol);
        }
    }

    #[test]
    fn gradient_sums_to_zero() {
        // Translation invariance ⇒ Σ_i ∇_{x_i} E = 0.
        let e = DoubleWell::dw4();
        let x = normal_vec(&mut rng(3), 8, 0.0, 2.0);
        let mut g = vec![0.0; 8];
        e.energy_grad(&x, &mut g);
        for c in 0..2 {
            let s: f64 = g.iter().skip(c).step_by(2).sum();
            assert!(s.abs() < 1e-10, "{s}");
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        let bad = |p| DoubleWell::new("x", p).is_err();
        assert!(bad(DoubleWellParams {
            n_particles: 1,
            ..DoubleWellParams::DW4
        }));
        assert!(bad(DoubleWellParams {
            spatial: 0,
            ..DoubleWellParams::DW4
        }));
        assert!(bad(DoubleWellParams {
            c: f64::NAN,
            ..DoubleWellParams::DW4
        }));
    }

    #[test]
    fn mean_energy_of_published_validation_split() {
        let path = shared_data_file("val_split_DW4.npy").unwrap_or_else(|e| panic!("{e}"));
        let arr = read_npy(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(arr.shape, vec![10000, 8], "{}", path.display());
        let e = DoubleWell::dw4();
        let p = e.particles().unwrap();
        let mut xs = arr.data;
        p.remove_com_batch(&mut xs);
        let energies = crate::energies_batch(&e, &xs).unwrap();
        let mean = energies.iter().sum::<f64>() / energies.len() as f64;
        assert!((mean - (-22.4)).abs() < 0.1, "mean DW-4 energy {mean}");
    }
}
