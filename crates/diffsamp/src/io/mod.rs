//! Reading and writing samples (.npy) and run directories.
pub mod config_files;
pub mod npy;
pub mod run_files;
pub mod samples;

pub use config_files::{from_toml, resolve_data_file};
pub use npy::{read_npy, write_npy, NpyArray};
pub use samples::{load_resampled, load_samples, Samples};
