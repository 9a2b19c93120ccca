//! Neural networks on libtorch (tch): devices and thread settings.
pub mod device;
