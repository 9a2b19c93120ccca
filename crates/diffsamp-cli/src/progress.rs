//! Terminal progress: a bar on a TTY, a log line every 10% otherwise (CI logs stay short).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// One phase of long work with a known number of steps.
pub struct Phase {
    bar: Option<ProgressBar>,
    name: String,
    total: u64,
    next_log: u64,
}

impl Phase {
    /// Starts a phase called `name` of `total` steps.
    pub fn new(name: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} eta {eta} {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            b.set_prefix(name.to_string());
            b
        });
        Phase {
            bar,
            name: name.to_string(),
            total: total.max(1),
            next_log: 0,
        }
    }

    /// Moves to `pos` with a status message.
    pub fn update(&mut self, pos: u64, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_position(pos);
                b.set_message(msg.to_string());
            }
            None => {
                if pos >= self.next_log {
                    eprintln!("{:>10} {:>3}% {msg}", self.name, 100 * pos / self.total);
                    self.next_log = pos + self.total.div_ceil(10);
                }
            }
        }
    }

    /// Ends the phase, leaving the final state on screen.
    pub fn finish(self, msg: &str) {
        match self.bar {
            Some(b) => b.finish_with_message(msg.to_string()),
            None => eprintln!("{:>10} done {msg}", self.name),
        }
    }
}
