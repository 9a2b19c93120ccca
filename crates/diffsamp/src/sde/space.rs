//! Where the states of a sampler live: R^d, the zero-centre-of-mass subspace of a point cloud,
//! or the flat torus of torsion angles.

use crate::energy::{Energy, Particles};

/// The state space of a sampler, which decides the projection after each step, the base
/// bridge and the base law in the terminal adjoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateSpace {
    /// R^d.
    Euclidean,
    /// Points in space with their centre of mass at the origin.
    ZeroCom(Particles),
    /// The flat torus [−π, π)^d (see [`crate::sde::torus`]).
    Torus,
}

impl StateSpace {
    /// The state space of `energy`'s configurations.
    pub fn of(energy: &dyn Energy) -> Self {
        if energy.periodic() {
            Self::Torus
        } else {
            energy.point_cloud().into()
        }
    }

    /// The point layout, for the zero-COM space.
    pub fn particles(self) -> Option<Particles> {
        match self {
            Self::ZeroCom(p) => Some(p),
            _ => None,
        }
    }
}

impl From<Option<Particles>> for StateSpace {
    fn from(p: Option<Particles>) -> Self {
        p.map_or(Self::Euclidean, Self::ZeroCom)
    }
}
