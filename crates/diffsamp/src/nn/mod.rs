//! Neural networks on libtorch (tch): devices and thread settings, control networks.
pub mod adam;
pub mod alloc;
pub mod checkpoint;
pub mod device;
pub mod egnn;
pub mod ema;
pub(crate) mod layers;
pub mod mlp;

pub use adam::{half_life_decay, Adam, AdamConfig};
pub use egnn::{Aggregation, Egnn, EgnnConfig};
pub use ema::Ema;
pub use mlp::{Mlp, MlpConfig};

use crate::energy::{Energy, Molecule, Particles};
use tch::Tensor;

/// The shape of a target's configurations, as a network sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateLayout {
    /// Dimension of one configuration.
    pub dim: usize,
    /// Points in space (identical particles or a molecule's atoms): COM removal and
    /// equivariant networks apply.
    pub points: Option<Particles>,
    /// The chemical graph, for a molecule.
    pub molecule: Option<Molecule>,
}

impl StateLayout {
    /// The layout of `energy`'s configurations.
    pub fn of(energy: &dyn Energy) -> Self {
        Self {
            dim: energy.dim(),
            points: energy.point_cloud(),
            molecule: energy.molecule(),
        }
    }

    /// Plain vectors of dimension `dim`.
    pub fn vector(dim: usize) -> Self {
        Self {
            dim,
            points: None,
            molecule: None,
        }
    }
}

/// A control network v_θ(t, x) (the drift of the controlled SDE is σ(t)² v, REFERENCE §1.4).
///
/// Shapes: `t` is `[batch]` (one time per row), `x` is `[batch, dim]` (particle systems:
/// row-major `[n_particles, spatial]` per row); the result is `[batch, dim]`. Floating kind
/// follows the network (f32).
pub trait Control {
    /// v_θ(t, x), `[batch, dim]`.
    fn control(&self, t: &Tensor, x: &Tensor) -> Tensor;
}

/// Any `Fn(t, x) -> v` is a control (analytic controls in tests, wrappers).
impl<F: Fn(&Tensor, &Tensor) -> Tensor> Control for F {
    fn control(&self, t: &Tensor, x: &Tensor) -> Tensor {
        self(t, x)
    }
}
