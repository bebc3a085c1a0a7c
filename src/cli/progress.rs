//! How downloads are shown: indicatif progress bars on a terminal; elsewhere (CI logs) one quiet
//! line when a transfer is verified or refused.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reconciler::content::{Progress, Transfer};

/// The progress display for this process's stderr.
pub fn for_stderr() -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Arc::new(Bars { multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()) })
    } else {
        Arc::new(Lines)
    }
}

#[derive(Debug)]
struct Bars {
    multi: MultiProgress,
}

impl Progress for Bars {
    fn start(&self, origin: &str, total: u64) -> Box<dyn Transfer> {
        let bar = self.multi.add(ProgressBar::new(total));
        let style =
            ProgressStyle::with_template("{spinner} {msg:40!} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(short(origin));
        Box::new(Bar { bar })
    }
}

struct Bar {
    bar: ProgressBar,
}

impl Transfer for Bar {
    fn advance(&mut self, n: u64) {
        self.bar.inc(n);
    }

    fn finish(&mut self, verified: bool) {
        if verified {
            self.bar.finish_and_clear();
        } else {
            self.bar.abandon_with_message(format!("{} (refused)", self.bar.message()));
        }
    }
}

#[derive(Debug)]
struct Lines;

impl Progress for Lines {
    fn start(&self, origin: &str, total: u64) -> Box<dyn Transfer> {
        Box::new(Line { origin: origin.to_string(), total, received: 0, started: Instant::now() })
    }
}

struct Line {
    origin: String,
    total: u64,
    received: u64,
    started: Instant,
}

impl Transfer for Line {
    fn advance(&mut self, n: u64) {
        self.received += n;
    }

    fn finish(&mut self, verified: bool) {
        let secs = self.started.elapsed().as_secs_f64();
        if verified {
            eprintln!(
                "verified {} ({} bytes, SHA-256 and size match the catalog) in {secs:.1} s",
                self.origin, self.total
            );
        } else {
            eprintln!("refused {} after {} of {} bytes", self.origin, self.received, self.total);
        }
    }
}

fn short(origin: &str) -> String {
    origin.rsplit('/').next().unwrap_or(origin).to_string()
}
