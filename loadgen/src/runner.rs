//! One stage on goose: N users, each owning an even slice of the stage's schedule.
//!
//! ```text
//! goose user u ─ loop: wait for its next intended time (schedule) ─ pick an action (mix)
//!                      ─ send ─ RequestRecord{intended, started, finished, outcome} ─▶ channel
//! ```
//!
//! goose supplies the users, their HTTP client and the run's lifetime; the rate and
//! every measurement are ours (its throttle is a ceiling in 10 ms bursts, its latency
//! aggregates are rounded). Requests go through [`Sender`] (hyper-util's client), not
//! goose's `GooseUser::request` and reqwest: those build a metric record of copied
//! strings and re-parse the URL for every request even with goose's metrics off, CPU
//! that at 10k req/s on a shared machine is taken from the server under test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use goose::GooseAttack;
use goose::client::GooseClientBuilder;
use goose::config::GooseConfiguration;
use goose::goose::{GooseUser, Scenario, Transaction, TransactionResult};
use http::{HeaderValue, Method};
use tokio::sync::mpsc::UnboundedSender;

use crate::collect::{Outcome, RequestRecord};
use crate::ledger::{self, Ledger};
use crate::pacer::Pacer;
use crate::run::Message;
use crate::scenarios::{Mix, plan_request};
use crate::schedule::Schedule;
use crate::sender::{Sender, Sent};

/// Everything a stage's users share.
pub struct StageContext {
    pub stage: usize,
    /// The run's clock: records are stamped relative to it.
    pub run_start: Instant,
    pub stage_start: Instant,
    pub stage_end: Instant,
    pub schedule: Schedule,
    pub mix: Mix,
    /// The users' HTTP client.
    pub sender: Sender,
    /// The tenants driven, each at an equal share of the rate: send slot `s` goes to
    /// tenant `s % tenants.len()`.
    pub tenants: Arc<[Tenant]>,
    /// Wakes each user at its intended send time, at most [`StageContext::slack`] late.
    pub pacer: Pacer,
    /// See [`pacing_slack`].
    pub slack: Duration,
    pub records: UnboundedSender<Message>,
    /// Every write the server acknowledged, to read back after the run.
    pub ledger: Ledger,
    /// Set by the abort guard: users stop sending.
    pub stop: Arc<AtomicBool>,
}

/// One tenant the generator drives: its key and the invoices seeded for it.
pub struct Tenant {
    pub authorization: HeaderValue,
    pub invoice_ids: Vec<i64>,
}

/// The tenant of send slot `slot`: round-robin, so each of `tenants` gets exactly its
/// share of the rate, second by second.
pub fn tenant_of(slot: u64, tenants: usize) -> usize {
    (slot % tenants.max(1) as u64) as usize
}

/// Per-user state kept in goose's session data.
#[derive(Clone)]
struct UserState {
    next: u64,
    random: u64,
}

/// How late the [`Pacer`] may wake a send: 0.05 ms on a sparse schedule (each send is
/// woken on its own anyway), 0.2 ms on a dense one, so that the sends of 0.2 ms share one
/// wake-up. tokio's 1 ms timer, the alternative, sends each millisecond's requests in a
/// burst 0–1 ms late. Measured at 10k req/s (`scripts/bench-loadgen.sh`, corrected P50
/// minus service P50 as the lateness, generator CPU per 1,000 requests):
///
/// | pacing | lateness at P50 | CPU |
/// |---|---|---|
/// | tokio's 1 ms timer | 1.03 ms | 14.5 ms |
/// | pacer, 0.05 ms slack | 0.08 ms | 40.5 ms |
/// | pacer, 0.15 ms slack | 0.17 ms | 27.7 ms |
/// | pacer, 0.2 ms slack | 0.15 ms | 22.1–22.4 ms |
///
/// The bursts also queued at the server: its service time at P50 was 0.19 ms under
/// tokio's timer and 0.07 ms with the sends spread out.
pub fn pacing_slack(target_rps: f64) -> Duration {
    if target_rps <= DENSE_FROM_RPS {
        Duration::from_micros(50)
    } else {
        Duration::from_micros(200)
    }
}

/// From this rate on, sends are closer than 0.67 ms apart and share wake-ups.
const DENSE_FROM_RPS: f64 = 1500.0;

/// How long an idle user (past the stage end, or stopped) naps between checks.
const IDLE_NAP: Duration = Duration::from_millis(50);

fn next_random(state: &mut u64) -> u64 {
    // xorshift64*: plenty for picking actions, and deterministic per user.
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

async fn send_next(ctx: &StageContext, user: &mut GooseUser) -> TransactionResult {
    let index = user.weighted_users_index;
    if user.get_session_data::<UserState>().is_none() {
        user.set_session_data(UserState {
            next: 0,
            random: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1),
        });
    }
    let (k, random) = match user.get_session_data_mut::<UserState>() {
        Some(state) => {
            let k = state.next;
            state.next += 1;
            (k, next_random(&mut state.random))
        }
        None => return Ok(()),
    };
    let intended = ctx.stage_start + ctx.schedule.send_offset(index, k);
    if intended >= ctx.stage_end || ctx.stop.load(Ordering::Relaxed) {
        // This user's slice is done; idle until goose ends the stage.
        tokio::time::sleep(IDLE_NAP).await;
        return Ok(());
    }
    ctx.pacer.sleep_until(intended, ctx.slack).await;

    let action = ctx.mix.pick(random);
    // The plan's slot: tenants are dealt over every segment's sends together.
    let slot = ctx.schedule.global_slot(index, k);
    let tenant_index = tenant_of(slot, ctx.tenants.len());
    let Some(tenant) = ctx.tenants.get(tenant_index) else {
        return Ok(());
    };
    let planned = plan_request(action, random >> 16, &tenant.invoice_ids);
    let method = match planned.method {
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        _ => Method::GET,
    };
    let json = planned
        .body
        .as_ref()
        .and_then(|body| serde_json::to_vec(body).ok());
    let started = Instant::now();
    let (sent, finished) = ctx
        .sender
        .send(
            &tenant.authorization,
            method,
            &planned.path,
            json,
            planned.body.is_some(),
        )
        .await;
    let outcome = match &sent {
        Sent::Response { status, .. } => Outcome::Status(*status),
        Sent::Timeout => Outcome::Timeout,
        Sent::ConnectError => Outcome::ConnectError,
        Sent::OtherError => Outcome::OtherError,
    };
    if let (
        Sent::Response {
            status: 200..=299,
            body: Some(body),
        },
        Some(request_body),
    ) = (&sent, &planned.body)
        && let Ok(body) = serde_json::from_slice::<serde_json::Value>(body)
    {
        let tenant = u16::try_from(tenant_index).unwrap_or(u16::MAX);
        ctx.ledger
            .extend(ledger::acks(action, tenant, request_body, &body));
    }
    let since_start = |at: Instant| at.saturating_duration_since(ctx.run_start);
    // The collector outlives every user; a closed channel only means the run is over.
    let _ = ctx.records.send(Message::Request(RequestRecord {
        stage: ctx.stage,
        route: action.route(),
        intended: since_start(intended),
        started: since_start(started),
        finished: since_start(finished),
        outcome,
    }));
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("goose could not run the stage: {0}")]
    Goose(String),
    #[error("cannot start the send pacer: {0}")]
    Pacer(std::io::Error),
    #[error(transparent)]
    Target(#[from] crate::sender::BadTarget),
}

/// Runs one stage to its end. `run_time` covers start-up, warm-up and steady window.
pub async fn run_stage(
    ctx: StageContext,
    target: &str,
    run_time: Duration,
    request_timeout: Duration,
) -> Result<(), StageError> {
    let users = ctx.schedule.users;
    // All users up within a quarter second: the stage start leaves them that long.
    let increase_rate = (users * 4).max(1);
    let seconds = run_time.as_secs_f64().ceil().max(1.0);
    let args: Vec<String> = vec![
        "--host".into(),
        target.into(),
        "--users".into(),
        users.to_string(),
        "--increase-rate".into(),
        increase_rate.to_string(),
        "--run-time".into(),
        format!("{seconds:.0}s"),
        "--timeout".into(),
        format!("{:.3}", request_timeout.as_secs_f64()),
        // goose's own per-request metrics: we measure every request ourselves.
        "--no-metrics".into(),
        "--no-telnet".into(),
        "--no-print-metrics".into(),
        "--no-error-summary".into(),
        "--quiet".into(),
    ];
    let config = GooseConfiguration::parse_args_default(&args)
        .map_err(|e| StageError::Goose(format!("{e:?}")))?;
    let ctx = Arc::new(ctx);
    let transaction = Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let ctx = ctx.clone();
        Box::pin(async move { send_next(&ctx, user).await })
    }))
    .set_name("scheduled request");
    // One HTTP client shared by all users (no cookies: API keys are headers): a client
    // per user costs ~0.15 MB each, 150 MB for the 1 000 users of a 10k req/s stage.
    let client = GooseClientBuilder::new()
        .without_cookies()
        .timeout(request_timeout)
        .user_agent("aimate-loadgen");
    GooseAttack::initialize_with_config(config)
        .map_err(|e| StageError::Goose(format!("{e:?}")))?
        .set_client_builder_without_cookies(client)
        .map_err(|e| StageError::Goose(format!("{e:?}")))?
        .register_scenario(Scenario::new("open model").register_transaction(transaction))
        .execute()
        .await
        .map_err(|e| StageError::Goose(format!("{e:?}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenant_gets_exactly_its_share_of_the_slots() {
        for tenants in [1, 3, 7] {
            let mut counts = vec![0u64; tenants];
            for slot in 0..2_100 {
                counts[tenant_of(slot, tenants)] += 1;
            }
            assert!(
                counts.iter().all(|&c| c == 2_100 / tenants as u64),
                "{counts:?}"
            );
        }
        // Any 100 consecutive slots (a second at 100 req/s) split 34/33/33.
        let mut window = [0u32; 3];
        for slot in 500..600 {
            window[tenant_of(slot, 3)] += 1;
        }
        window.sort_unstable();
        assert_eq!(window, [33, 33, 34]);
    }
}
