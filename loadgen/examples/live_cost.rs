//! Benchmark: what a watched live view adds to the generator, measured in one process
//! without the noise of a whole run. A 10k req/s stage is filed into the collector as
//! the users would file it, once as an unwatched run does and once as a watched one does
//! (every change noted, the changed seconds published every second, the verdict so far
//! graded every 2 s, a page subscribed). Prints the extra CPU per request and per 1 000
//! requests, and that as a share of the generator's own CPU per 1 000 requests
//! (`scripts/bench-loadgen.sh` measures it; 64 ms on the 2-core machine of issue 26).
//!
//! Run with: `cargo run --release -p aimate-loadgen --example live_cost [RATE] [SECONDS] [GENERATOR_MS_PER_1K]`

use std::time::{Duration, Instant};

use aimate_live::{Hub, RunFeed};
use aimate_loadgen::ServerSeries;
use aimate_loadgen::collect::{Collector, Outcome, RequestRecord, StageWindow};
use aimate_loadgen::live::{LiveTicker, SamplesSoFar};

const ROUTES: [&str; 5] = [
    "GET /api/dashboard",
    "GET /api/invoices",
    "GET /api/invoices/{id}",
    "GET /api/jobs",
    "POST /api/invoices",
];

fn window(seconds: u64, rate: f64) -> StageWindow {
    StageWindow {
        name: "10k".into(),
        target_rps: rate,
        plan_rps: rate,
        segment: aimate_loadgen::segment::Segment::WHOLE,
        start: Duration::from_millis(500),
        steady_start: Duration::from_millis(5500),
        steady_end: Duration::from_millis(5500 + seconds * 1000),
    }
}

/// Files `seconds` of requests at `rate`; `tick` is called every 250 ms of run clock,
/// as the collector task does. Returns the CPU time it took.
fn file(
    seconds: u64,
    rate: f64,
    collector: &mut Collector,
    mut tick: impl FnMut(&mut Collector, Duration),
) -> Duration {
    let per_tick = (rate / 4.0) as u64;
    let started = Instant::now();
    let mut n: u64 = 0;
    for quarter in 0..(seconds + 6) * 4 {
        for _ in 0..per_tick {
            let intended = Duration::from_micros(500_000 + n * 1_000_000 / rate as u64);
            // Latencies of a fast server, spread over a few milliseconds.
            let service = Duration::from_micros(800 + (n * 7919) % 4000);
            collector.push(RequestRecord {
                stage: 0,
                route: ROUTES[(n % 5) as usize],
                intended,
                started: intended,
                finished: intended + service,
                outcome: Outcome::Status(200),
            });
            n += 1;
        }
        tick(collector, Duration::from_millis(quarter * 250 + 500));
    }
    started.elapsed()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000.0);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let generator_ms: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(64.0);
    let requests = rate * (seconds + 6) as f64;
    let rounds = 3;

    let (mut plain, mut watched) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mut collector = Collector::new(vec![window(seconds, rate)]);
        plain.push(file(seconds, rate, &mut collector, |_, _| {}));

        let hub = Hub::new();
        let run = RunFeed::new(hub.clone(), "bench");
        // Graded against the guide's objectives, as a run in this checkout is.
        let spec = aimate_reports::spec::SloSpec::parse(include_str!("../../slo.toml"), "slo.toml")
            .unwrap_or_default();
        let feed = run.part("bench", "load", 0, spec);
        // A page subscribed: the verdict so far is graded while someone watches.
        let _page = hub.subscribe();
        let mut collector = Collector::new(vec![window(seconds, rate)]);
        let mut live = LiveTicker::new(
            feed,
            "http://127.0.0.1:8080",
            ServerSeries::Target.source(),
            SamplesSoFar::default(),
            &mut collector,
        );
        live.stage(0, &window(seconds, rate));
        watched.push(file(seconds, rate, &mut collector, |collector, now| {
            live.tick(collector, now)
        }));
    }
    let best = |runs: &[Duration]| runs.iter().min().copied().unwrap_or_default();
    let (plain, watched) = (best(&plain), best(&watched));
    let extra_ms = (watched.as_secs_f64() - plain.as_secs_f64()) * 1000.0;
    let per_1k = extra_ms / requests * 1000.0;
    println!(
        "requests filed          : {requests:.0} ({rate:.0} req/s for {seconds} s + warm-up), best of {rounds}"
    );
    println!(
        "unwatched collector     : {:.1} ms ({:.3} µs per request)",
        plain.as_secs_f64() * 1e3,
        plain.as_secs_f64() * 1e6 / requests
    );
    println!(
        "watched collector       : {:.1} ms ({:.3} µs per request)",
        watched.as_secs_f64() * 1e3,
        watched.as_secs_f64() * 1e6 / requests
    );
    println!("a page watching adds    : {per_1k:.3} ms CPU per 1 000 requests");
    println!(
        "against the generator   : {:.2} % of its {generator_ms:.0} ms per 1 000 requests (goal <= 2 %)",
        100.0 * per_1k / generator_ms
    );
}
