//! `--live`: the live view of a run (aimate-live), started before the run and closed
//! after it; each command opens one part per thing it runs.

use std::time::Duration;

use aimate_live::{LiveServer, PartFeed, RunFeed};
use aimate_loadgen::plan::{LoadPlan, parse_duration};
use aimate_reports::spec::SloSpec;
use anyhow::Context;

use crate::cli::LiveArgs;

pub struct LiveView {
    server: LiveServer,
    run: RunFeed,
    linger: Duration,
}

impl LiveView {
    /// Starts the view if `--live` was given, and says where it is.
    pub fn start(args: &LiveArgs, title: &str) -> anyhow::Result<Option<Self>> {
        let Some(addr) = args.live else {
            return Ok(None);
        };
        let linger = parse_duration(&args.live_linger).context("--live-linger")?;
        let hub = aimate_live::Hub::new();
        let run = RunFeed::new(hub.clone(), title);
        let server = LiveServer::start(addr, hub)?;
        match server.token() {
            Some(_) => eprintln!(
                "aimate: live view on {} (reachable beyond this machine: the token in this \
                 URL is needed and is shown only once)",
                server.url()
            ),
            None => eprintln!("aimate: live view on {}", server.url()),
        }
        Ok(Some(Self {
            server,
            run,
            linger,
        }))
    }

    pub fn part(
        &self,
        title: &str,
        kind: &'static str,
        planned: Duration,
        spec: SloSpec,
    ) -> PartFeed {
        let planned_ms = u64::try_from(planned.as_millis()).unwrap_or(u64::MAX);
        self.run.part(title, kind, planned_ms, spec)
    }

    /// Tells the pages the run is over, serves them `--live-linger` longer, and stops.
    pub fn end(self) {
        self.run.end();
        if !self.linger.is_zero() {
            eprintln!(
                "aimate: the live view stays on {} for {} (its reports are linked there)",
                self.server.url(),
                humantime::format_duration(self.linger)
            );
            std::thread::sleep(self.linger);
        }
        self.server.close();
    }
}

/// About how long a load plan takes: each stage's start-up, warm-up and steady window.
pub fn planned(plan: &LoadPlan) -> Duration {
    let stages = u32::try_from(plan.stages.len()).unwrap_or(u32::MAX);
    (plan.warmup + plan.duration + Duration::from_secs(1)) * stages
}
