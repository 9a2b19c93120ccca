//! Pictures of results: histograms, 2-D scatter plots and per-step traces as PNG files.
pub mod plots;

pub use plots::{histogram_overlay, scatter_2d, traces, Axes2d, Series};
