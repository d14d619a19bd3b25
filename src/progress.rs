//! Progress on long work: a bar on stderr when it is a terminal, nothing at all otherwise (a
//! cron job's log or a pipe gets no control characters). Counts bytes read.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A progress bar on a terminal, nothing elsewhere.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar over `total` bytes; hidden unless stderr is a terminal.
    pub fn bytes(total: u64) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:<28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    /// No bar (library use and tests).
    pub fn hidden() -> Self {
        Progress {
            bar: ProgressBar::hidden(),
        }
    }

    pub(crate) fn stage(&self, what: impl Into<String>) {
        let what = what.into();
        tracing::info!(stage = %what, "reconcile");
        self.bar.set_message(what);
    }

    pub(crate) fn add(&self, n: u64) {
        self.bar.inc(n);
    }

    pub(crate) fn grow(&self, n: u64) {
        self.bar.inc_length(n);
    }

    /// Runs `f` (which prints) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.bar.suspend(f)
    }

    /// Ends the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
