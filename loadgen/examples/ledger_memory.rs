//! Benchmark: the acknowledged-write ledger of a one-hour run at 10k req/s with the
//! default mix, filled as the users would fill it. Prints the number of writes, bytes
//! per write and the process's peak memory (goal: peak <= 200 MB).
//!
//! Run with: `cargo run --release -p aimate-loadgen --example ledger_memory [RATE] [SECONDS]`

use aimate_loadgen::ledger::{Ack, Ledger, acks};
use aimate_loadgen::scenarios::Action;
use serde_json::json;

/// `VmRSS` and `VmHWM` (peak) of this process, in MB.
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000.0);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3600.0);
    let requests = rate * seconds;
    let share = |action: Action| f64::from(action.default_weight()) / 1000.0;
    let bulk_size = 50;
    let (invoices, jobs, bulks) = (
        (requests * share(Action::CreateInvoice)) as u64,
        (requests * share(Action::CreateJob)) as u64,
        (requests * share(Action::BulkInvoices)) as u64,
    );
    let (rss_before, _) = memory_mb();
    let ledger = Ledger::default();
    let mut id = 0_i64;
    let mut next_id = || {
        id += 1;
        id
    };
    // Interleaved as a run would produce them.
    let rounds = invoices.max(jobs).max(bulks);
    for round in 0..rounds {
        if round < invoices {
            let request = json!({"customer": format!("Customer {}", round % 40), "amount_cents": 1000 + round});
            ledger.extend(acks(
                Action::CreateInvoice,
                0,
                &request,
                &json!({"id": next_id()}),
            ));
        }
        if round < jobs {
            let request = json!({"customer": "Customer 1", "title": format!("Job {round}")});
            ledger.extend(acks(
                Action::CreateJob,
                0,
                &request,
                &json!({"id": next_id()}),
            ));
        }
        if round < bulks {
            let items: Vec<_> = (0..bulk_size)
                .map(|i| json!({"customer": format!("Bulk {i}"), "amount_cents": i}))
                .collect();
            let ids: Vec<i64> = (0..bulk_size).map(|_| next_id()).collect();
            ledger.extend(acks(
                Action::BulkInvoices,
                0,
                &json!({"invoices": items}),
                &json!({"ids": ids}),
            ));
        }
    }
    let (rss_after, peak) = memory_mb();
    let writes = ledger.len();
    println!(
        "run simulated      : {rate:.0} req/s for {seconds:.0} s = {requests:.0} requests (default mix)"
    );
    println!("acknowledged writes: {writes}");
    println!(
        "bytes per write    : {} (in the ledger)",
        std::mem::size_of::<Ack>()
    );
    println!(
        "ledger memory      : {:.1} MB measured ({:.1} MB RSS before, {:.1} MB after)",
        rss_after - rss_before,
        rss_before,
        rss_after
    );
    println!("peak RSS           : {peak:.1} MB (goal <= 200)");
}
