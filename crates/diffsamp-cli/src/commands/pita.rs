//! `diffsamp pita`: progressive inference-time annealing down a temperature ladder, from a
//! TOML config into a run directory (resuming it when it already holds the same run).

use crate::progress::Phase;
use anyhow::{bail, Context};
use diffsamp::methods::pita::{PitaConfig, PitaEvent, PitaRun};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Run config (TOML, see configs/*_pita*.toml). Optional when --out already holds a run.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory: created, or resumed from its last checkpoint.
    #[arg(long)]
    out: PathBuf,
}

/// Progress bars: one per training stage and one per annealing stage.
#[derive(Default)]
pub(crate) struct Reporter {
    bar: Option<(String, Phase)>,
}

impl Reporter {
    fn bar(&mut self, key: String, total: usize) -> &mut Phase {
        if self.bar.as_ref().is_none_or(|(k, _)| *k != key) {
            self.finish();
            self.bar = Some((key.clone(), Phase::new(&key, total as u64)));
        }
        &mut self.bar.as_mut().expect("just set").1
    }

    /// Closes the open progress bar.
    pub(crate) fn finish(&mut self) {
        if let Some((_, p)) = self.bar.take() {
            p.finish("");
        }
    }

    pub(crate) fn on(&mut self, ev: PitaEvent) {
        match ev {
            PitaEvent::Status(s) => {
                self.finish();
                eprintln!("{s} ...");
            }
            PitaEvent::Training {
                temperature,
                step,
                total,
                loss,
                ..
            } => self
                .bar(format!("training T = {temperature}"), total)
                .update(step as u64, &format!("loss {loss:.4}")),
            PitaEvent::Annealing {
                temperature,
                step,
                total,
                ess,
            } => self
                .bar(format!("annealing to T = {temperature}"), total)
                .update(step as u64, &format!("ESS {ess:.3}")),
            PitaEvent::Stage(s) => {
                self.finish();
                let fenced = fence_note(s.fenced);
                eprintln!(
                    "T = {}: <E> {:.3} ± {:.3}, ESS min {:.3}, final-resampling ESS {:.3}{fenced}, {} energy evaluations so far",
                    s.temperature, s.mean_energy, s.std_energy, s.ess_min, s.final_ess, s.energy_evals
                );
            }
        }
    }
}

/// ", N above the energy fence dropped" where the fence dropped samples, else nothing.
pub(crate) fn fence_note(fenced: usize) -> String {
    if fenced > 0 {
        format!(", {fenced} above the energy fence dropped")
    } else {
        String::new()
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
    let config = PitaConfig::from_toml(&text, &path)?;
    config.validate()?;
    let mut run = PitaRun::open(config, &a.out)?;
    eprintln!(
        "PITA on {} (T = {:?}): run directory {}",
        run.config().system,
        run.config().temperatures,
        a.out.display()
    );
    let mut rep = Reporter::default();
    let summary = run.run(&mut |ev| rep.on(ev))?;
    println!(
        "{} training steps, {} energy evaluations, {:.1} s",
        summary.training_steps, summary.energy_evals, summary.wall_seconds
    );
    if let Some(r) = &summary.evaluation {
        print!("{}", r.table());
    }
    eprintln!("outputs in {}", a.out.display());
    Ok(())
}
