//! One module per subcommand.
pub mod energy;
pub mod eval;
pub mod flow;
pub mod pita;
pub mod reference;
pub mod sample;
pub mod systems;
pub mod train;
