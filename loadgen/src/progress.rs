//! The live status line while a run goes: stage, target vs achieved rate over the last
//! second, P95 of that second, errors so far. Drawn on stderr only when it is a
//! terminal (indicatif hides it otherwise), so CI logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use aimate_reports::LatencyHistogram;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        Self { bar }
    }

    /// A line that stays (printed above the status line, or plainly without a terminal).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    /// Updates the status line with the last complete second.
    pub fn second(
        &self,
        stage: &str,
        target_rps: f64,
        sent: u64,
        latency: &LatencyHistogram,
        errors_so_far: u64,
    ) {
        if let Some(bar) = &self.bar {
            let p95 = latency
                .quantile_micros(0.95)
                .map_or("-".to_owned(), |us| format!("{:.2} ms", us as f64 / 1000.0));
            bar.set_message(format!(
                "stage {stage}: target {target_rps:.0} req/s, last second {sent} req, P95 {p95}, errors {errors_so_far}"
            ));
            bar.tick();
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
