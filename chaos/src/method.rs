//! Runs an experiment's method against a [`Target`] while the load runs: each step waits
//! for its start in the steady window, injects its fault, holds it, undoes it, and
//! stamps what happened on the load generator's clock.
//!
//! Events (`t_ms` from the run's start, the RunRecord's timeline):
//! `fault` spans (start → end, graded as phases), and points: `kill`, `restart`, `ready`
//! (with the time to ready), `freeze`, `thaw`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aimate_reports::record::{Event, EventKind};
use rand::Rng;

use crate::exhaust;
use crate::experiment::{Fault, Pick, ProxyLink, Rollback, Step};
use crate::links::FaultLink;
use crate::supervisor::Stop;
use crate::target::{Database, Target};

/// When the steady window starts, on the load generator's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub run_start: Instant,
    pub steady_start: Instant,
}

impl Clock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.run_start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Extra time a lease gets beyond its step, so the controller (not the keeper) undoes it
/// in the normal case.
const LEASE_GRACE: Duration = Duration::from_secs(5);

/// What the method did: its events, and the steps that could not be carried out.
#[derive(Debug, Default)]
pub struct MethodOutcome {
    pub events: Vec<Event>,
    pub failures: Vec<String>,
}

/// Sleeps until `deadline`, or less if `stop` is set (an aborted run ends its faults now).
async fn hold_until(deadline: Instant, stop: &AtomicBool) {
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
}

/// Told of each event as it happens (a live view): the step's index for a fault span,
/// which arrives first begun (`end_ms: None`) and then ended; `None` for a point.
pub type EventHook = Arc<dyn Fn(&Event, Option<usize>) + Send + Sync>;

/// One step's events, told to the hook as they are stamped.
struct Stamps {
    events: Vec<Event>,
    hook: Option<EventHook>,
    step: usize,
}

impl Stamps {
    fn push(&mut self, event: Event) {
        if let Some(hook) = &self.hook {
            let span = (event.kind == EventKind::Fault).then_some(self.step);
            hook(&event, span);
        }
        self.events.push(event);
    }

    /// A fault span has begun; its end comes with [`Stamps::push`].
    fn begun(&self, t_ms: u64, detail: String) {
        if let Some(hook) = &self.hook {
            let event = Event {
                t_ms,
                kind: EventKind::Fault,
                detail,
                end_ms: None,
            };
            hook(&event, Some(self.step));
        }
    }
}

/// Runs every step (concurrently, each on its own schedule) and returns when all ended.
pub async fn run(
    target: Arc<Target>,
    steps: Vec<Step>,
    clock: Clock,
    stop: Arc<AtomicBool>,
    hook: Option<EventHook>,
) -> MethodOutcome {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, step) in steps.into_iter().enumerate() {
        let (target, stop, hook) = (target.clone(), stop.clone(), hook.clone());
        tasks.spawn(async move {
            let mut stamps = Stamps {
                events: Vec::new(),
                hook,
                step: index,
            };
            let result = run_step(&target, &step, clock, &stop, &mut stamps).await;
            (
                stamps.events,
                result.map_err(|e| format!("method {} ({}): {e}", index + 1, step.fault.name())),
            )
        });
    }
    let mut outcome = MethodOutcome::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((events, result)) => {
                outcome.events.extend(events);
                if let Err(failure) = result {
                    outcome.failures.push(failure);
                }
            }
            Err(error) => outcome
                .failures
                .push(format!("a method step panicked: {error}")),
        }
    }
    outcome.events.sort_by_key(|e| e.t_ms);
    outcome
}

fn point(clock: &Clock, kind: EventKind, detail: String) -> Event {
    Event {
        t_ms: clock.now_ms(),
        kind,
        detail,
        end_ms: None,
    }
}

async fn pick(target: &Target, instance: &Pick) -> usize {
    match instance {
        Pick::Index(index) => *index,
        Pick::Random => {
            let count = target.instances.count().await.max(1);
            rand::rng().random_range(0..count)
        }
    }
}

fn link(target: &Target, on: ProxyLink) -> Result<&dyn FaultLink, String> {
    target
        .links
        .get(&on)
        .map(AsRef::as_ref)
        .ok_or_else(|| format!("the target has no fault proxy on its {} link", on.name()))
}

async fn run_step(
    target: &Target,
    step: &Step,
    clock: Clock,
    stop: &AtomicBool,
    events: &mut Stamps,
) -> Result<(), String> {
    hold_until(clock.steady_start + step.at, stop).await;
    if stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let started_ms = clock.now_ms();
    events.begun(started_ms, step.fault.name().to_owned());
    let end = Instant::now() + step.duration;
    let lease_end = SystemTime::now() + step.duration + LEASE_GRACE;
    let instances = &target.instances;
    let detail = match &step.fault {
        Fault::KillInstance { instance, how } => {
            let index = pick(target, instance).await;
            let name = instances.describe(index);
            let signal = if *how == Stop::Kill {
                "SIGKILL"
            } else {
                "SIGTERM"
            };
            instances.kill(index, *how, lease_end).await?;
            events.push(point(&clock, EventKind::Kill, format!("{name} ({signal})")));
            hold_until(end, stop).await;
            events.push(point(&clock, EventKind::Restart, name.clone()));
            let ready = instances.bring_back(index).await?;
            events.push(point(
                &clock,
                EventKind::Ready,
                format!("{name} ready {} ms after restart", ready.as_millis()),
            ));
            format!("kill-instance {} {signal}", short(&name))
        }
        Fault::FreezeInstance { instance } => {
            let index = pick(target, instance).await;
            let name = instances.describe(index);
            instances.freeze(index, lease_end).await?;
            events.push(point(&clock, EventKind::Freeze, format!("{name} (frozen)")));
            hold_until(end, stop).await;
            instances.thaw(index).await?;
            events.push(point(&clock, EventKind::Thaw, format!("{name} (thawed)")));
            format!("freeze-instance {}", short(&name))
        }
        Fault::Toxic { toxic, on } => {
            let proxy = link(target, *on)?;
            proxy.add_toxic(toxic, lease_end).await?;
            hold_until(end, stop).await;
            proxy.remove_toxic(&toxic.name).await?;
            match on {
                ProxyLink::Front => format!("toxic {}", toxic_summary(toxic)),
                other => format!("toxic {} on {}", toxic_summary(toxic), link_title(*other)),
            }
        }
        Fault::RedisDown => match &target.redis_service {
            Some(service) => {
                service.down(lease_end).await?;
                events.push(point(
                    &clock,
                    EventKind::Kill,
                    format!("{} (stopped)", service.describe()),
                ));
                hold_until(end, stop).await;
                let ready = service.up().await?;
                events.push(point(
                    &clock,
                    EventKind::Ready,
                    format!(
                        "{} ready {} ms after start",
                        service.describe(),
                        ready.as_millis()
                    ),
                ));
                "redis-down".to_owned()
            }
            None => {
                let proxy = link(target, ProxyLink::Redis)?;
                proxy.set_enabled(false, lease_end).await?;
                hold_until(end, stop).await;
                proxy.set_enabled(true, lease_end).await?;
                "redis-down".to_owned()
            }
        },
        Fault::ExhaustDb { sessions } => match &target.database {
            Some(Database::Sqlite(path)) => {
                let lease = exhaust::hold_sqlite_writer(path, step.duration + LEASE_GRACE)
                    .await
                    .map_err(|e| e.to_string())?;
                hold_until(end, stop).await;
                lease.release().await;
                "exhaust-db (SQLite write lock held)".to_owned()
            }
            Some(Database::Postgres(url)) => {
                let (lease, held) =
                    exhaust::hold_postgres_sessions(url, *sessions, step.duration + LEASE_GRACE)
                        .await
                        .map_err(|e| e.to_string())?;
                hold_until(end, stop).await;
                lease.release().await;
                format!("exhaust-db ({held} PostgreSQL sessions held)")
            }
            None => return Err("the target's database cannot be reached from here".into()),
        },
        Fault::Slowloris { connections } => {
            let addrs = target.instance_addrs().await;
            let each = connections.div_ceil(addrs.len().max(1));
            let mut leases = Vec::new();
            for addr in addrs {
                leases.push(
                    exhaust::slowloris(
                        addr,
                        each,
                        Duration::from_secs(1),
                        step.duration + LEASE_GRACE,
                    )
                    .await
                    .map_err(|e| e.to_string())?,
                );
            }
            hold_until(end, stop).await;
            for lease in leases {
                lease.release().await;
            }
            format!("slowloris {connections} connections")
        }
        Fault::DiskFill { percent } => {
            let volume = target
                .volume
                .as_ref()
                .ok_or("the target has no drill volume to fill")?;
            let fill = volume
                .fill(*percent, lease_end)
                .map_err(|e| e.to_string())?;
            let used = volume.usage().map(|u| u.used_percent()).unwrap_or(f64::NAN);
            hold_until(end, stop).await;
            fill.free(volume).map_err(|e| e.to_string())?;
            format!("disk-fill to {used:.0}%")
        }
    };
    events.push(Event {
        t_ms: started_ms,
        kind: EventKind::Fault,
        detail,
        end_ms: Some(clock.now_ms()),
    });
    Ok(())
}

/// A phase's name keeps an own instance's index (`kill-instance 1`) and a container's
/// name (`kill-instance aimate-aimate-2`).
fn short(name: &str) -> &str {
    name.strip_prefix("instance ")
        .or_else(|| name.strip_prefix("container "))
        .unwrap_or(name)
}

fn link_title(link: ProxyLink) -> &'static str {
    match link {
        ProxyLink::Front => "the front",
        ProxyLink::Redis => "Redis",
        ProxyLink::Database => "the database",
    }
}

fn toxic_summary(toxic: &crate::toxic::Toxic) -> String {
    let kind = serde_json::to_value(&toxic.kind).unwrap_or_default();
    let name = kind["type"].as_str().unwrap_or("toxic").to_owned();
    let attributes = kind["attributes"]
        .as_object()
        .map(|a| {
            // An injected response body is noise in a phase's name.
            a.iter()
                .filter(|(k, _)| k.as_str() != "body")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    format!("{name} {attributes}").trim().to_owned()
}

/// Rollbacks: run after the method whatever happened, so the target is as it was.
pub async fn rollback(target: &Target, rollbacks: &[Rollback]) -> Vec<String> {
    let mut failures = Vec::new();
    for rollback in rollbacks {
        match rollback {
            Rollback::RestartInstances => {
                for error in target.instances.restore().await {
                    failures.push(format!("rollback restart-instances: {error}"));
                }
                if let Some(service) = &target.redis_service
                    && let Err(error) = service.up().await
                {
                    failures.push(format!("rollback restart-instances: {error}"));
                }
            }
            Rollback::ResetToxics => {
                for link in target.links.values() {
                    if let Err(error) = link.reset().await {
                        failures.push(format!("rollback reset-toxics: {error}"));
                    }
                }
            }
            Rollback::FreeDisk => {
                if let Some(volume) = &target.volume
                    && let Err(error) = volume.free()
                {
                    failures.push(format!("rollback free-disk: {error}"));
                }
            }
        }
    }
    failures
}
