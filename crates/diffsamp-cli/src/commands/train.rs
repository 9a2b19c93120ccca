//! `diffsamp train`: train an Adjoint Sampling sampler from a TOML config into a run directory
//! (resuming it when it already holds the same run).

use crate::progress::Phase;
use anyhow::{bail, Context};
use diffsamp::methods::adjoint_sampling::{AsConfig, Run, RunEvent};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Run config (TOML, see configs/). Optional when --out already holds a run: its
    /// config.toml is used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory: created, or resumed from its last checkpoint.
    #[arg(long)]
    out: PathBuf,
    /// Overrides `epochs` of the config (e.g. to extend a finished run).
    #[arg(long)]
    epochs: Option<usize>,
}

/// Turns run events into progress bars and status lines.
pub struct Reporter {
    phase: Option<Phase>,
    sampling: Option<Phase>,
    last_eval: String,
}

impl Reporter {
    /// A reporter with no bar shown yet.
    pub fn new() -> Self {
        Reporter {
            phase: None,
            sampling: None,
            last_eval: String::new(),
        }
    }

    /// Shows one run event.
    pub fn on(&mut self, ev: RunEvent) {
        match ev {
            RunEvent::Started { done, total } => {
                if done > 0 {
                    eprintln!("resuming at epoch {done} of {total}");
                }
                let mut p = Phase::new("training", total as u64);
                p.update(done as u64, "");
                self.phase = Some(p);
            }
            RunEvent::Status(s) => {
                if s == "final evaluation" {
                    self.finish();
                }
                if self.phase.is_none() {
                    eprintln!("{s} ...");
                }
            }
            RunEvent::Epoch(r) => {
                if let Some(p) = self.phase.as_mut() {
                    p.update(
                        r.epoch as u64,
                        &format!(
                            "loss {:.4}{} <E> {:.3} ESS {:.0}% evals {}{}",
                            r.mean_loss,
                            r.mean_log_variance
                                .map_or(String::new(), |v| format!(" log-var {v:.3}")),
                            r.mean_energy,
                            100.0 * r.ess,
                            r.energy_evals,
                            self.last_eval
                        ),
                    );
                }
            }
            // Periodic evaluations stay inside the training bar.
            RunEvent::Sampling { .. } if self.phase.is_some() => {}
            RunEvent::Sampling { done, total } => {
                if done == 0 {
                    self.sampling = Some(Phase::new("sampling", total as u64));
                }
                if let Some(p) = self.sampling.as_mut() {
                    p.update(done as u64, "");
                }
                if done == total {
                    if let Some(p) = self.sampling.take() {
                        p.finish("");
                    }
                }
            }
            RunEvent::Evaluated {
                epoch,
                report,
                importance,
            } => {
                let ess = importance
                    .map(|i| format!(" ESS {:.1}%", 100.0 * i.ess_fraction))
                    .unwrap_or_default();
                self.last_eval = match report.w2 {
                    Some(w2) => format!(" | W2 {w2:.3} E-W2 {:.3}", report.energy_w2),
                    None => format!(
                        " | E-W2 {:.3}{}",
                        report.energy_w2,
                        report
                            .sinkhorn_cost
                            .map(|s| format!(" Sinkhorn {s:.4}"))
                            .unwrap_or_default()
                    ),
                } + &ess;
                if self.phase.is_none() {
                    eprintln!("evaluation at epoch {epoch}:{}", self.last_eval);
                }
            }
        }
    }

    /// Ends the training bar, leaving it on screen.
    pub fn finish(&mut self) {
        if let Some(p) = self.phase.take() {
            p.finish(&self.last_eval);
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let saved = a.out.join("config.toml");
    let path = match &a.config {
        Some(p) => p.clone(),
        None if saved.exists() => saved,
        None => bail!("--config is needed: {} holds no run yet", a.out.display()),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut config = AsConfig::from_toml(&text, &path)?;
    if let Some(e) = a.epochs {
        config.epochs = e;
    }
    config.validate()?;
    let mut run = Run::open(config, &a.out)?;
    eprintln!(
        "Adjoint Sampling on {}: run directory {}",
        run.config().system,
        a.out.display()
    );
    let mut rep = Reporter::new();
    let summary = run.train(&mut |ev| rep.on(ev))?;
    rep.finish();
    println!(
        "{} epochs, {} energy evaluations, {:.1} s training",
        summary.epochs, summary.energy_evals, summary.train_wall_seconds
    );
    print!("{}", summary.report.table());
    if let Some(i) = &summary.importance {
        println!("importance weights: {}", i.weights);
        match &i.resampled {
            Some(r) => {
                println!("importance-resampled samples (reweighted toward p; not the AS protocol):");
                print!("{}", r.table());
            }
            None => println!(
                "importance-resampled samples: not evaluated (ESS below evaluation.min_resampled_ess)"
            ),
        }
    }
    eprintln!(
        "samples -> {}\nmetrics -> {} and {}\nplots -> {}",
        a.out.join("samples.npy").display(),
        a.out.join("final.json").display(),
        a.out.join("metrics.jsonl").display(),
        a.out.join("plots").display()
    );
    Ok(())
}
