//! Target energies E(x) in units of kT, p*(x) ∝ exp(-E(x)), with analytic gradients.
//!
//! Configurations are flat `f64` slices of length [`Energy::dim`]; a batch is a row-major
//! `[batch, dim]` slice. Particle systems store `[n_particles, spatial_dim]` per row.
//! Nothing here depends on the tensor engine: physical energies are plain Rust, f64.

pub mod batch;
pub mod data;
pub mod double_well;
pub mod error;
pub mod force_field;
pub mod gmm;
pub mod harmonic;
pub mod lennard_jones;
pub mod many_well;
pub mod molecule;
pub mod pair;
pub mod particles;
pub mod quadrature;
pub mod registry;
pub mod student_t;
pub mod tempered;
#[cfg(test)]
pub(crate) mod testutil;
pub mod torsional;
pub mod von_mises;

pub use batch::{energies_batch, energy_and_grad_batch, EnergyBatch};
pub use double_well::{DoubleWell, DoubleWellParams};
pub use error::EnergyError;
pub use force_field::{ForceField, ForceFieldEnergy};
pub use gmm::GaussianMixture;
pub use harmonic::HarmonicParticles;
pub use lennard_jones::LennardJones;
pub use many_well::{ManyWell, QuarticWell};
pub use molecule::Molecule;
pub use pair::PairQuadrature;
pub use particles::Particles;
pub use quadrature::TorusQuadrature;
pub use registry::{by_name, force_field, known_systems, system, Modes, System};
pub use student_t::StudentTMixture;
pub use tempered::Tempered;
pub use torsional::{Embedding, TorsionalMolecule};
pub use von_mises::TorusVonMises;

/// A target density p*(x) ∝ exp(-E(x)) with E in kT units.
///
/// Implementations are pure functions of `x`: deterministic and thread-safe, so batches are
/// evaluated in parallel by [`energy_and_grad_batch`].
pub trait Energy: Send + Sync {
    /// Name accepted by the CLI (e.g. `"dw4"`).
    fn name(&self) -> &str;

    /// Dimension d of one configuration.
    fn dim(&self) -> usize;

    /// Particle layout when this is a particle system whose configurations live in the
    /// zero-centre-of-mass subspace; `None` for plain vector targets.
    fn particles(&self) -> Option<Particles> {
        None
    }

    /// The chemical graph when this is a molecule (distinguishable atoms, `[atoms, 3]` per
    /// row, translation-invariant); `None` otherwise.
    fn molecule(&self) -> Option<Molecule> {
        None
    }

    /// The layout of configurations made of points in space, identical particles or the atoms
    /// of a molecule: where centre-of-mass removal and E(3)-equivariant networks apply.
    fn point_cloud(&self) -> Option<Particles> {
        self.particles()
            .or_else(|| self.molecule().map(|m| m.layout()))
    }

    /// Whether every coordinate is an angle on the flat torus [−π, π) (torsional targets):
    /// samplers then wrap their paths, and the base law of Adjoint Sampling is the wrapped
    /// normal.
    fn periodic(&self) -> bool {
        false
    }

    /// For a target on internal coordinates of a molecule: the map to and from its Cartesian
    /// configurations.
    fn embedding(&self) -> Option<&dyn Embedding> {
        None
    }

    /// E(x), writing ∇E(x) into `grad`. Both slices have length [`Energy::dim`]
    /// (checked by the batched entry points, debug-asserted here).
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64;

    /// E(x) alone. The default evaluates the gradient into a scratch buffer; energies with a
    /// cheaper energy-only path override it.
    fn energy(&self, x: &[f64]) -> f64 {
        let mut grad = vec![0.0; x.len()];
        self.energy_grad(x, &mut grad)
    }
}

/// Capability: exact i.i.d. samples from p*.
pub trait ExactSampler {
    /// Draws `n` independent samples, returned row-major `[n, dim]`.
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Vec<f64>;
}

/// Capability: the log normalising constant log Z = log ∫ exp(-E(x)) dx is known in closed form.
pub trait LogPartition {
    /// log Z.
    fn log_z(&self) -> f64;
}

/// A boxed energy is an energy (so `Tempered<Box<dyn Energy>>` works).
impl<E: Energy + ?Sized> Energy for Box<E> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn particles(&self) -> Option<Particles> {
        (**self).particles()
    }
    fn molecule(&self) -> Option<Molecule> {
        (**self).molecule()
    }
    fn periodic(&self) -> bool {
        (**self).periodic()
    }
    fn embedding(&self) -> Option<&dyn Embedding> {
        (**self).embedding()
    }
    fn energy_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        (**self).energy_grad(x, grad)
    }
    fn energy(&self, x: &[f64]) -> f64 {
        (**self).energy(x)
    }
}
