//! Tempered energies E_T(x) = E(x)/T at a relative temperature T.

use crate::{Energy, EnergyError, Particles};

/// E_T(x) = E(x) / T, ∇E_T = ∇E / T, with T > 0 the temperature relative to the one E is
/// expressed at (p_T ∝ exp(−E/T); T > 1 flattens, T < 1 sharpens). Name, dimension and
/// particle layout are those of the wrapped energy.
#[derive(Clone, Debug)]
pub struct Tempered<E> {
    inner: E,
    temperature: f64,
    inv_temperature: f64,
}

impl<E: Energy> Tempered<E> {
    /// Wraps `inner` at relative temperature `temperature`; a non-positive or non-finite T is
    /// an [`EnergyError::InvalidParameter`].
    pub fn new(inner: E, temperature: f64) -> Result<Self, EnergyError> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(EnergyError::InvalidParameter {
                name: "temperature",
                value: temperature.to_string(),
                why: "relative temperature must be finite and > 0",
            });
        }
        Ok(Self {
            inner,
            temperature,
            inv_temperature: 1.0 / temperature,
        })
    }

    /// The relative temperature T.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// The wrapped energy E.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Unwraps the energy E.
    pub fn into_inner(self) -> E {
        self.inner
    }
}

impl<E: Energy> Energy for Tempered<E> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn particles(&self) -> Option<Particles> {
        self.inner.particles()
    }

    fn molecule(&self) -> Option<crate::Molecule> {
        self.inner.molecule()
    }

    fn periodic(&self) -> bool {
        self.inner.periodic()
    }

    fn embedding(&self) -> Option<&dyn crate::Embedding> {
        self.inner.embedding()
    }

    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let e = self.inner.energy_grad(x, grad);
        grad.iter_mut().for_each(|g| *g *= self.inv_temperature);
        e * self.inv_temperature
    }

    fn energy(&self, x: &[f64]) -> f64 {
        self.inner.energy(x) * self.inv_temperature
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{DoubleWell, LennardJones};

    #[test]
    fn scales_energy_and_gradient() {
        let base = DoubleWell::dw4();
        let x = normal_vec(&mut rng(40), 8, 0.0, 2.0);
        let mut g = vec![0.0; 8];
        let e = base.energy_grad(&x, &mut g);
        for t in [0.5, 1.0, 2.0, 4.0] {
            let tempered = Tempered::new(DoubleWell::dw4(), t).unwrap();
            let mut gt = vec![0.0; 8];
            let et = tempered.energy_grad(&x, &mut gt);
            assert!((et - e / t).abs() < 1e-12 * (1.0 + e.abs()));
            assert!((tempered.energy(&x) - e / t).abs() < 1e-12 * (1.0 + e.abs()));
            for (a, b) in gt.iter().zip(&g) {
                assert!((a - b / t).abs() < 1e-12 * (1.0 + b.abs()));
            }
            assert_grad_fd(&tempered, &x, 1e-6);
        }
    }

    #[test]
    fn delegates_layout_and_works_boxed() {
        let boxed: Box<dyn Energy> = Box::new(LennardJones::lj13());
        let t = Tempered::new(boxed, 2.0).unwrap();
        assert_eq!(t.name(), "lj13");
        assert_eq!(t.dim(), 39);
        assert_eq!(t.particles(), Some(Particles { n: 13, spatial: 3 }));
        assert_eq!(t.temperature(), 2.0);
    }

    #[test]
    fn rejects_non_positive_temperature() {
        for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = Tempered::new(DoubleWell::dw4(), t).unwrap_err();
            assert!(
                matches!(
                    e,
                    EnergyError::InvalidParameter {
                        name: "temperature",
                        ..
                    }
                ),
                "{e}"
            );
        }
    }
}
