//! `diffsamp`: the command-line tool, a thin layer over the `diffsamp` library.

mod commands;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "diffsamp",
    version,
    about = "Diffusion-based samplers for Boltzmann densities"
)]
struct Cli {
    /// Worker threads for the energy and metric computations, and libtorch's threads where the
    /// config sets no `threads` (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the built-in target systems.
    Systems,
    /// Evaluate E (kT units) and optionally ∇E on configurations from a .npy file.
    Energy(commands::energy::Args),
    /// Draw reference samples: exact sampling where the system allows it, else MCMC.
    Reference(commands::reference::Args),
    /// Compare generated samples with reference samples (W2, energy W2, histograms, ...).
    Eval(commands::eval::Args),
    /// Train an Adjoint Sampling sampler from a TOML config (resumes an existing run).
    Train(commands::train::Args),
    /// PITA: anneal diffusion models down a temperature ladder with Feynman–Kac SMC.
    Pita(commands::pita::Args),
    /// Draw fresh samples from a trained run.
    Sample(commands::sample::Args),
    /// Flow models: pretrain (flow matching), finetune (Adjoint Matching), sample.
    Flow(commands::flow::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
        {
            eprintln!("error: cannot set {n} threads: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Systems => commands::systems::run(),
        Command::Energy(a) => commands::energy::run(a),
        Command::Reference(a) => commands::reference::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::Pita(a) => commands::pita::run(a),
        Command::Sample(a) => commands::sample::run(a),
        Command::Flow(a) => commands::flow::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
