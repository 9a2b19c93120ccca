//! Evaluation metrics for Boltzmann samplers, in plain Rust `f64` (no tensor engine).
//!
//! Data are flat row-major slices with an explicit shape: `n` samples × `dim` values. A
//! particle system stores each row as `[n_particles, spatial_dim]`
//! (`dim = n_particles · spatial_dim`), described by [`ParticleLayout`].
//!
//! | metric | module | what the papers report |
//! |---|---|---|
//! | geometric W2 (AS protocol) | [`w2`] | sqrt of the OT cost over aligned pair costs |
//! | plain W2 (DEM family) | [`w2`] | sqrt of the OT cost, no alignment |
//! | energy W2 (1-D) | [`energy_w2`] | AS: sqrt; DEM: the square W2² |
//! | Sinkhorn (sampling benchmark) | [`sinkhorn`] | entropic OT cost, squared distances, not square-rooted |
//! | distance / energy histograms, TVD | [`histogram`] | |
//! | mode coverage | [`modes`] | |
//! | dihedrals; alanine φ/ψ KL, φ > 0 population, chirality | [`dihedral`], [`alanine`] | |
//! | ESS, log Z | [`weights`] | |
//! | empirical quantiles | [`quantile`] | |
//!
//! Public functions never panic on user data: shape errors, empty inputs and non-finite values
//! come back as [`MetricsError`]. Rows holding NaN/inf can be dropped (and counted) first with
//! [`filter_finite`].

pub mod alanine;
pub mod assignment;
pub mod data;
pub mod dihedral;
pub mod energy_w2;
pub mod histogram;
pub mod kabsch;
pub mod modes;
pub mod quantile;
pub mod sinkhorn;
pub mod w2;
pub mod weights;

pub use assignment::{linear_assignment, Assignment, AssignmentSolver};
pub use data::{filter_finite, remove_com, remove_com_in_place, FilteredRows, ParticleLayout};
pub use dihedral::{dihedral, dihedrals};
pub use energy_w2::{wasserstein2_1d, W2OneDim};
pub use histogram::{
    common_histograms, distance_histogram_tvd, interatomic_distances, kl_divergence,
    total_variation, Histogram, HistogramComparison,
};
pub use kabsch::{orthogonal_procrustes, Procrustes};
pub use modes::{mode_coverage, CoverageThreshold, ModeCoverage, ModeCoverageConfig};
pub use quantile::SortedFinite;
pub use sinkhorn::{
    sinkhorn, sinkhorn_divergence, SinkhornConfig, SinkhornDivergence, SinkhornResult,
};
pub use w2::{
    geometric_w2, pair_cost, pair_lower_bound, plain_w2, torus_w2, Alignment, GeometricW2Config,
    OtSolver, PermutationCost, SizeMismatch, W2Result,
};
pub use weights::{
    effective_sample_size, elbo, log_z_estimate, normalized_ess, summarize_log_weights,
    weighted_mean, WeightSummary, WeightedMean,
};

/// Errors of every metric in this crate.
///
/// `what` names the argument or quantity at fault so that a message read in the CLI says where
/// to look.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// A flat buffer's length does not fit the shape it was given.
    #[error("{what}: length {len} is not a multiple of the row dimension {dim}")]
    NotMultiple {
        /// Which argument.
        what: &'static str,
        /// Length of the flat buffer.
        len: usize,
        /// Row dimension it should be a multiple of.
        dim: usize,
    },
    /// Two sizes that must agree do not.
    #[error("{what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// Which size.
        what: &'static str,
        /// The size required.
        expected: usize,
        /// The size found.
        got: usize,
    },
    /// A particle layout does not match the row dimension.
    #[error(
        "particle layout {n_particles} particles x {spatial_dim} dims = {} does not match row dimension {dim}",
        n_particles * spatial_dim
    )]
    LayoutMismatch {
        /// Row dimension of the data.
        dim: usize,
        /// Particles per configuration.
        n_particles: usize,
        /// Spatial dimension of one particle.
        spatial_dim: usize,
    },
    /// Two sample sets of different sizes where equal sizes are required.
    #[error(
        "sample sizes differ ({n_a} vs {n_b}); use SizeMismatch::Truncate to compare the first min(n_a, n_b) rows"
    )]
    SampleSizeMismatch {
        /// Rows in the first set.
        n_a: usize,
        /// Rows in the second set.
        n_b: usize,
    },
    /// An input with no elements (or no rows).
    #[error("{what}: input is empty")]
    Empty {
        /// Which argument.
        what: &'static str,
    },
    /// A NaN or infinite value where finite values are required.
    #[error("{what}: non-finite value {value} at flat index {index} (drop such rows with filter_finite)")]
    NonFinite {
        /// Which argument.
        what: &'static str,
        /// Flat index of the first offending value.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// A parameter outside its valid range.
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// Its value, printed.
        value: String,
        /// The valid range.
        reason: &'static str,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, MetricsError>;
