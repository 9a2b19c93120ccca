//! Pictures of results: histograms and 2-D scatter plots as PNG files.
pub mod plots;

pub use plots::{histogram_overlay, scatter_2d, Axes2d, Series};
