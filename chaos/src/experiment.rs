//! Experiment files, in the spirit of Chaos Toolkit: a steady-state hypothesis, a method
//! (faults with a start and a duration, injected while load runs), rollbacks and a
//! safeguard.
//!
//! ```toml
//! title = "Kill a random instance"
//! [target]
//! instances = 3                       # ≥ 2: behind HAProxy
//! database = "postgres"               # default "sqlite" (a file of the drill's)
//! redis = true                        # a shared Redis (cache L2, rate limit), reached
//!                                     # through a fault proxy of its own
//! [load]
//! rate = "100"
//! warmup = "3s"
//! duration = "30s"                    # the steady window the method runs in
//! [hypothesis]                        # default: slo.toml [phase]
//! objectives = ["rate(errors) < 5%", "p(95) < 1000ms"]
//! [[method]]
//! fault = "kill-instance"             # kill-instance, freeze-instance, toxic,
//! at = "10s"                          # exhaust-db, slowloris, disk-fill, redis-down
//! duration = "5s"
//! [safeguard]
//! objectives = ["rate(errors) < 50%"]
//! for = "5s"
//! ```
//!
//! A deployment aimate did not start is named by its containers' labels instead:
//!
//! ```toml
//! [target]
//! kind = "docker"
//! labels = { "com.docker.compose.project" = "aimate", "com.docker.compose.service" = "aimate" }
//! instances = 3                       # the most containers the selector may match
//! url = "http://127.0.0.1:8080"       # where the load goes (its balancer); --target wins
//! proxy_api = "http://127.0.0.1:8474" # Toxiproxy's API (or `aimate chaos proxy`): toxics
//! proxies = { database = "database" } # link → proxy name there (default: the link's name)
//! redis_labels = { "com.docker.compose.service" = "redis" }   # redis-down stops it
//! ```
//!
//! Parsing checks everything it can before anything is injected: an error names the file
//! and line and says what is wrong.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use aimate_reports::expr::{self, Metric, Objective};
use serde::Deserialize;
use toml::Spanned;

use crate::supervisor::Stop;
use crate::toxic::Toxic;

/// The faults a method step can inject, named once: serde spells them (kebab-case) in
/// files and errors, [`FaultKind::name`] in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    KillInstance,
    FreezeInstance,
    Toxic,
    ExhaustDb,
    Slowloris,
    DiskFill,
    RedisDown,
}

impl FaultKind {
    pub const ALL: [Self; 7] = [
        Self::KillInstance,
        Self::FreezeInstance,
        Self::Toxic,
        Self::ExhaustDb,
        Self::Slowloris,
        Self::DiskFill,
        Self::RedisDown,
    ];

    /// The name as written in experiment files (`kill-instance`).
    pub fn name(self) -> String {
        written_name(self)
    }

    fn known() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

/// How serde spells a unit variant in experiment files (`kill-instance`).
fn written_name(variant: impl serde::Serialize) -> String {
    toml::Value::try_from(variant)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What runs after the method whatever happened, so the target is as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rollback {
    /// Thaw every instance and restart those that are down.
    RestartInstances,
    /// Remove every toxic from the fault proxies and let their traffic through again.
    ResetToxics,
    /// Delete the disk drill's fill file.
    FreeDisk,
}

impl Rollback {
    pub const ALL: [Self; 3] = [Self::RestartInstances, Self::ResetToxics, Self::FreeDisk];

    pub fn name(self) -> String {
        written_name(self)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Pick {
    Random,
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Take an instance down (SIGKILL or SIGTERM); the supervisor restarts it after the
    /// step's duration, with back-off, and the step ends when it is ready again.
    KillInstance { instance: Pick, how: Stop },
    /// SIGSTOP an instance for the duration: alive, accepting, answering nothing.
    FreezeInstance { instance: Pick },
    /// A toxic on a fault proxy: the one in front of the target, or the one between
    /// the instances and Redis.
    Toxic { toxic: Toxic, on: ProxyLink },
    /// Starve the server's database pool: SQLite's write lock, or PostgreSQL sessions.
    ExhaustDb { sessions: usize },
    /// Idle connections trickling headers (slowloris) to every instance.
    Slowloris { connections: usize },
    /// Fill the data directory's tmpfs to `percent` used.
    DiskFill { percent: f64 },
    /// Redis gone for the fleet: its fault proxy cuts every connection and refuses new
    /// ones (as a stopped Redis would), then lets them through again.
    RedisDown,
}

/// Which fault proxy a toxic goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyLink {
    /// Between the load and the target (the default).
    Front,
    /// Between the instances and Redis (needs `[target] redis = true`, or a
    /// deployment's proxy).
    Redis,
    /// Between the instances and their database (a deployment's proxy).
    Database,
}

impl ProxyLink {
    pub const ALL: [Self; 3] = [Self::Front, Self::Redis, Self::Database];

    pub fn name(self) -> String {
        written_name(self)
    }
}

/// What an experiment breaks.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TargetKind {
    /// Instances aimate starts for the run (`instances`, `database`, `redis`).
    #[default]
    Own,
    /// Running containers of a deployment, chosen by label.
    Docker(DockerTarget),
}

/// `[target] kind = "docker"`.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerTarget {
    /// Every one must be on a container for it to be selected.
    pub labels: BTreeMap<String, String>,
    /// Where the load goes (the deployment's balancer); `--target` overrides it.
    pub url: Option<String>,
    /// The port each container serves on, for its own series (default 8080).
    pub port: u16,
    /// A Toxiproxy-compatible control API the deployment routes through.
    pub proxy_api: Option<String>,
    /// Each link's proxy name on that API.
    pub proxies: BTreeMap<ProxyLink, String>,
    /// The Redis container `redis-down` stops (else the API's `redis` proxy is cut).
    pub redis_labels: Option<BTreeMap<String, String>>,
}

impl DockerTarget {
    /// The proxy a link's toxics go on, by its name on the API.
    pub fn proxy_name(&self, link: ProxyLink) -> String {
        self.proxies
            .get(&link)
            .cloned()
            .unwrap_or_else(|| link.name())
    }
}

/// Where the instances keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseKind {
    /// A SQLite file of the drill's (or the `--database-url` given, as it is).
    Sqlite,
    /// A schema of the run's own on the PostgreSQL of `--database-url`.
    Postgres,
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Self::KillInstance { .. } => FaultKind::KillInstance,
            Self::FreezeInstance { .. } => FaultKind::FreezeInstance,
            Self::Toxic { .. } => FaultKind::Toxic,
            Self::ExhaustDb { .. } => FaultKind::ExhaustDb,
            Self::Slowloris { .. } => FaultKind::Slowloris,
            Self::DiskFill { .. } => FaultKind::DiskFill,
            Self::RedisDown => FaultKind::RedisDown,
        }
    }

    pub fn name(&self) -> String {
        self.kind().name()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// From the start of the steady window.
    pub at: Duration,
    pub duration: Duration,
    pub fault: Fault,
}

/// Stops the load (and with it the method) when broken for `for_seconds` in a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Safeguard {
    pub max_error_rate: Option<f64>,
    /// (percentile, bound) of each second's latency.
    pub max_latency: Option<(f64, Duration)>,
    pub for_seconds: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub title: String,
    pub description: String,
    /// How many instances aimate starts; on a deployment, the most containers the
    /// selector may match.
    pub instances: usize,
    pub kind: TargetKind,
    pub database: DatabaseKind,
    /// The instances share a Redis, through a fault proxy of the run's.
    pub redis: bool,
    /// Requests per second, and as written (`1k`).
    pub rate: f64,
    pub rate_text: String,
    pub warmup: Duration,
    pub duration: Duration,
    /// `None`: the `[phase]` objectives of slo.toml.
    pub hypothesis: Option<Vec<Objective>>,
    pub method: Vec<Step>,
    pub rollbacks: Vec<Rollback>,
    pub safeguard: Option<Safeguard>,
    pub alerts: AlertPlan,
}

/// `[alerts]`: which alert the faults should fire, and how rule durations shrink to a
/// drill's seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPlan {
    /// The alert's name (`AimateInstanceDown`); `None` (`expect = "none"`): no alert is
    /// expected, so `time(detect)` is not graded.
    pub expect: Option<String>,
    /// Rule windows and `for:` durations are multiplied by this.
    pub time_scale: f64,
}

/// The default scale: the guide's 5-minute alerts become 10 s, inside a drill's fault.
pub const DEFAULT_TIME_SCALE: f64 = 1.0 / 30.0;

impl Default for AlertPlan {
    fn default() -> Self {
        Self {
            expect: None,
            time_scale: DEFAULT_TIME_SCALE,
        }
    }
}

/// `1/30` or `0.05`: a factor in (0, 1].
fn parse_scale(text: &str) -> Result<f64, String> {
    let value = match text.split_once('/') {
        Some((a, b)) => {
            let (a, b): (f64, f64) = (
                a.trim()
                    .parse()
                    .map_err(|_| format!("`{text}` is not a fraction"))?,
                b.trim()
                    .parse()
                    .map_err(|_| format!("`{text}` is not a fraction"))?,
            );
            a / b
        }
        None => text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a number or a fraction like 1/30"))?,
    };
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(format!("time_scale `{text}` must be above 0 and at most 1"))
    }
}

impl Experiment {
    /// A fault proxy in front of the target.
    pub fn needs_proxy(&self) -> bool {
        self.method.iter().any(|s| {
            matches!(
                s.fault,
                Fault::Toxic {
                    on: ProxyLink::Front,
                    ..
                }
            )
        })
    }

    pub fn needs_volume(&self) -> bool {
        self.method
            .iter()
            .any(|s| matches!(s.fault, Fault::DiskFill { .. }))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", if *line == 0 { String::new() } else { format!(":{line}") })]
pub struct ExperimentError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    title: String,
    #[serde(default)]
    description: String,
    instances: Option<Spanned<i64>>,
    target: Option<RawTarget>,
    load: RawLoad,
    hypothesis: Option<RawObjectives>,
    #[serde(default)]
    method: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    rollbacks: Vec<Rollback>,
    safeguard: Option<RawSafeguard>,
    alerts: Option<RawAlerts>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    expect: Spanned<String>,
    time_scale: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: Option<Spanned<String>>,
    instances: Option<Spanned<i64>>,
    database: Option<Spanned<String>>,
    redis: Option<Spanned<bool>>,
    labels: Option<Spanned<BTreeMap<String, String>>>,
    url: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    proxy_api: Option<Spanned<String>>,
    proxies: Option<Spanned<BTreeMap<String, String>>>,
    redis_labels: Option<Spanned<BTreeMap<String, String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    rate: Spanned<String>,
    warmup: Spanned<String>,
    duration: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjectives {
    objectives: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSafeguard {
    objectives: Vec<Spanned<String>>,
    #[serde(rename = "for")]
    for_: Spanned<String>,
}

/// A duration such as `10s`, `500ms` or `1m`; negative ones get their own message.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    aimate_reports::duration::parse(text).map_err(|error| error.to_string())
}

fn line_of(text: &str, span: Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

impl Experiment {
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ExperimentError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and checks an experiment; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ExperimentError> {
        let error = |span: Range<usize>, message: String| ExperimentError {
            file: file.to_owned(),
            line: line_of(text, span),
            message,
        };
        let raw: Raw = toml::from_str(text)
            .map_err(|e| error(e.span().unwrap_or(0..0), e.message().to_owned()))?;
        let nested = raw.target.as_ref().and_then(|t| t.instances.as_ref());
        if let (Some(_), Some(again)) = (&raw.instances, nested) {
            return Err(error(
                again.span(),
                "instances is given twice: keep the one in [target]".into(),
            ));
        }
        let deployment = raw
            .target
            .as_ref()
            .and_then(|t| t.kind.as_ref())
            .is_some_and(|k| k.get_ref() != "own");
        // Instances aimate starts share this machine; a deployment may be larger.
        let most = if deployment { 100 } else { 16 };
        let instances = match nested.or(raw.instances.as_ref()) {
            None => 1,
            Some(given) => usize::try_from(*given.get_ref())
                .ok()
                .filter(|n| (1..=most).contains(n))
                .ok_or_else(|| {
                    error(
                        given.span(),
                        format!("instances must be 1 to {most} (got {})", given.get_ref()),
                    )
                })?,
        };
        let database = match raw.target.as_ref().and_then(|t| t.database.as_ref()) {
            None => DatabaseKind::Sqlite,
            Some(name) => toml::Value::String(name.get_ref().clone())
                .try_into()
                .map_err(|_| {
                    error(
                        name.span(),
                        format!(
                            "unknown database `{}` (known: sqlite, postgres)",
                            name.get_ref()
                        ),
                    )
                })?,
        };
        let redis = raw
            .target
            .as_ref()
            .and_then(|t| t.redis.as_ref())
            .is_some_and(|r| *r.get_ref());
        let kind = match &raw.target {
            Some(target) => {
                parse_kind(target, raw.instances.is_some()).map_err(|(span, m)| error(span, m))?
            }
            None => TargetKind::Own,
        };
        let duration_of = |value: &Spanned<String>| {
            parse_duration(value.get_ref()).map_err(|m| error(value.span(), m))
        };
        let rate = aimate_reports::spec::parse_rate(raw.load.rate.get_ref())
            .map_err(|m| error(raw.load.rate.span(), m))?;
        let warmup = duration_of(&raw.load.warmup)?;
        let duration = duration_of(&raw.load.duration)?;
        if duration.is_zero() {
            return Err(error(
                raw.load.duration.span(),
                "the steady window needs a duration above 0".into(),
            ));
        }
        let objectives = |list: &[Spanned<String>]| -> Result<Vec<Objective>, ExperimentError> {
            list.iter()
                .map(|o| {
                    expr::parse(o.get_ref())
                        .map_err(|m| error(o.span(), format!("objective `{}`: {m}", o.get_ref())))
                })
                .collect()
        };
        let hypothesis = raw
            .hypothesis
            .as_ref()
            .map(|h| objectives(&h.objectives))
            .transpose()?;
        if let Some(list) = &hypothesis
            && list.is_empty()
        {
            return Err(error(
                0..0,
                "[hypothesis] needs at least one objective".into(),
            ));
        }
        let mut method = Vec::new();
        for (index, step) in raw.method.iter().enumerate() {
            let at_step = |m: String| error(step.span(), format!("method {}: {m}", index + 1));
            let step = parse_step(step.get_ref(), instances).map_err(&at_step)?;
            if let Err(why) = fits(&step.fault, &kind) {
                return Err(at_step(why));
            }
            let uses_redis = matches!(
                step.fault,
                Fault::RedisDown
                    | Fault::Toxic {
                        on: ProxyLink::Redis,
                        ..
                    }
            );
            if uses_redis && !redis && kind == TargetKind::Own {
                return Err(at_step(format!(
                    "{} acts on the fleet's Redis: set `redis = true` in [target]",
                    step.fault.name()
                )));
            }
            let end = step.at + step.duration;
            if end > duration {
                return Err(at_step(format!(
                    "ends at {:?}, after the steady window ({duration:?}); shorten it or lengthen [load] duration",
                    end
                )));
            }
            method.push(step);
        }
        if method.is_empty() {
            return Err(error(0..0, "the experiment has no [[method]] step".into()));
        }
        let safeguard = match &raw.safeguard {
            None => None,
            Some(guard) => {
                let mut safeguard = Safeguard {
                    max_error_rate: None,
                    max_latency: None,
                    for_seconds: duration_of(&guard.for_)?.as_secs().max(1) as u32,
                };
                for (objective, raw) in objectives(&guard.objectives)?.iter().zip(&guard.objectives)
                {
                    match (objective.metric, objective.op.is_upper_bound()) {
                        (Metric::ErrorRate, true) => {
                            safeguard.max_error_rate = Some(objective.threshold)
                        }
                        (Metric::Percentile(p), true) => {
                            safeguard.max_latency =
                                Some((p, Duration::from_micros(objective.threshold as u64)));
                        }
                        _ => {
                            return Err(error(
                                raw.span(),
                                format!(
                                    "safeguard `{}`: a safeguard watches each second's `rate(errors) < X` or `p(N) < T`",
                                    objective.text
                                ),
                            ));
                        }
                    }
                }
                Some(safeguard)
            }
        };
        let alerts = match &raw.alerts {
            None => AlertPlan::default(),
            Some(alerts) => {
                let expect = alerts.expect.get_ref().trim();
                if expect.is_empty() {
                    return Err(error(
                        alerts.expect.span(),
                        "[alerts] expect names an alert, or is \"none\"".into(),
                    ));
                }
                AlertPlan {
                    expect: (expect != "none").then(|| expect.to_owned()),
                    time_scale: match &alerts.time_scale {
                        None => DEFAULT_TIME_SCALE,
                        Some(scale) => {
                            parse_scale(scale.get_ref()).map_err(|m| error(scale.span(), m))?
                        }
                    },
                }
            }
        };
        Ok(Self {
            alerts,
            title: raw.title,
            description: raw.description,
            instances,
            kind,
            database,
            redis,
            rate,
            rate_text: raw.load.rate.get_ref().trim().to_owned(),
            warmup,
            duration,
            hypothesis,
            method,
            rollbacks: raw.rollbacks,
            safeguard,
        })
    }
}

/// `[target] kind`: the settings of one kind are refused on the other, so a file never
/// silently means less than it says.
fn parse_kind(
    target: &RawTarget,
    top_level_instances: bool,
) -> Result<TargetKind, (Range<usize>, String)> {
    let kind = target.kind.as_ref();
    match kind.map(|k| k.get_ref().as_str()) {
        None | Some("own") => {
            let docker_only = [
                target.labels.as_ref().map(|v| ("labels", v.span())),
                target.url.as_ref().map(|v| ("url", v.span())),
                target.port.as_ref().map(|v| ("port", v.span())),
                target.proxy_api.as_ref().map(|v| ("proxy_api", v.span())),
                target.proxies.as_ref().map(|v| ("proxies", v.span())),
                target
                    .redis_labels
                    .as_ref()
                    .map(|v| ("redis_labels", v.span())),
            ];
            if let Some((key, span)) = docker_only.into_iter().flatten().next() {
                return Err((
                    span,
                    format!("`{key}` selects a deployment: add `kind = \"docker\"` to [target]"),
                ));
            }
            Ok(TargetKind::Own)
        }
        Some("docker") => {
            let own_only = [
                target.database.as_ref().map(|v| ("database", v.span())),
                target.redis.as_ref().map(|v| ("redis", v.span())),
            ];
            if let Some((key, span)) = own_only.into_iter().flatten().next() {
                return Err((
                    span,
                    format!(
                        "`{key}` shapes a target aimate starts; a deployment has its own \
                         (name its Redis with redis_labels, its links with proxies)"
                    ),
                ));
            }
            let kind_span = kind.map_or(0..0, Spanned::span);
            if target.instances.is_none() || top_level_instances {
                return Err((
                    kind_span,
                    "a docker target needs `instances` in [target]: the most containers the \
                     selector may match (a selector matching more is refused)"
                        .into(),
                ));
            }
            let labels = target.labels.as_ref().ok_or((
                kind_span.clone(),
                "a docker target needs `labels`, e.g. { \"com.docker.compose.service\" = \"aimate\" }".into(),
            ))?;
            if labels.get_ref().is_empty() {
                return Err((labels.span(), "`labels` needs at least one label".into()));
            }
            let port = match &target.port {
                None => 8080,
                Some(port) => u16::try_from(*port.get_ref())
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or((
                        port.span(),
                        format!("port {} is not a TCP port", port.get_ref()),
                    ))?,
            };
            let url = match &target.url {
                None => None,
                Some(url) if url.get_ref().starts_with("http://") => Some(url.get_ref().clone()),
                Some(url) => {
                    return Err((
                        url.span(),
                        format!("url `{}` must be an http:// address", url.get_ref()),
                    ));
                }
            };
            let mut proxies = BTreeMap::new();
            if let Some(given) = &target.proxies {
                for (link, name) in given.get_ref() {
                    let link: ProxyLink =
                        toml::Value::String(link.clone()).try_into().map_err(|_| {
                            (
                                given.span(),
                                format!(
                                    "proxies: unknown link `{link}` (known: {})",
                                    ProxyLink::ALL.map(ProxyLink::name).join(", ")
                                ),
                            )
                        })?;
                    proxies.insert(link, name.clone());
                }
            }
            if target.proxy_api.is_none()
                && let Some(given) = &target.proxies
            {
                return Err((
                    given.span(),
                    "`proxies` name proxies on `proxy_api`: set it".into(),
                ));
            }
            if let Some(redis) = &target.redis_labels
                && redis.get_ref().is_empty()
            {
                return Err((
                    redis.span(),
                    "`redis_labels` needs at least one label".into(),
                ));
            }
            Ok(TargetKind::Docker(DockerTarget {
                labels: labels.get_ref().clone(),
                url,
                port,
                proxy_api: target.proxy_api.as_ref().map(|a| a.get_ref().clone()),
                proxies,
                redis_labels: target.redis_labels.as_ref().map(|r| r.get_ref().clone()),
            }))
        }
        Some(other) => Err((
            kind.map_or(0..0, Spanned::span),
            format!("unknown target kind `{other}` (known: own, docker)"),
        )),
    }
}

/// Whether `fault` can be done on a target of `kind`; why not, if it cannot.
fn fits(fault: &Fault, kind: &TargetKind) -> Result<(), String> {
    let docker = match kind {
        TargetKind::Own => {
            return match fault {
                Fault::Toxic {
                    on: ProxyLink::Database,
                    ..
                } => Err(
                    "a target aimate starts has no database proxy: use exhaust-db, or \
                          drill a deployment that routes its database through a fault proxy"
                        .into(),
                ),
                _ => Ok(()),
            };
        }
        TargetKind::Docker(docker) => docker,
    };
    match fault {
        Fault::DiskFill { .. } => Err(
            "disk-fill needs a volume aimate mounted; a container's disk is not ours to fill"
                .into(),
        ),
        Fault::Slowloris { .. } => Err(
            "slowloris needs each instance's own address on loopback; on a deployment, put a \
             toxic on its front proxy instead"
                .into(),
        ),
        Fault::Toxic { on, .. } if docker.proxy_api.is_none() => Err(format!(
            "a toxic on the {} link needs the deployment's fault proxy: set `proxy_api` in [target]",
            on.name()
        )),
        Fault::RedisDown if docker.redis_labels.is_none() && docker.proxy_api.is_none() => Err(
            "redis-down on a deployment needs `redis_labels` (its Redis container) or \
             `proxy_api` with a redis proxy"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// Reads and removes `key`; the step's table must be empty afterwards.
fn take<'a>(table: &mut toml::Table, key: &'a str) -> Option<(&'a str, toml::Value)> {
    table.remove(key).map(|v| (key, v))
}

fn as_str(entry: Option<(&str, toml::Value)>) -> Result<Option<String>, String> {
    match entry {
        None => Ok(None),
        Some((_, toml::Value::String(s))) => Ok(Some(s)),
        Some((key, other)) => Err(format!("`{key}` must be a string (got {other})")),
    }
}

fn as_count(entry: Option<(&str, toml::Value)>, default: usize) -> Result<usize, String> {
    match entry {
        None => Ok(default),
        Some((key, toml::Value::Integer(n))) => usize::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{key}` must be a positive count (got {n})")),
        Some((key, other)) => Err(format!("`{key}` must be a number (got {other})")),
    }
}

fn parse_pick(entry: Option<(&str, toml::Value)>, instances: usize) -> Result<Pick, String> {
    match entry {
        None => Ok(Pick::Random),
        Some((_, toml::Value::String(s))) if s == "random" => Ok(Pick::Random),
        Some((_, toml::Value::Integer(n))) => usize::try_from(n)
            .ok()
            .filter(|n| *n < instances)
            .map(Pick::Index)
            .ok_or_else(|| {
                format!(
                    "instance {n} does not exist (instances are 0 to {})",
                    instances - 1
                )
            }),
        Some((_, other)) => Err(format!(
            "`instance` is \"random\" or an index (got {other})"
        )),
    }
}

fn parse_step(table: &toml::Table, instances: usize) -> Result<Step, String> {
    let mut table = table.clone();
    let fault = take(&mut table, "fault")
        .ok_or_else(|| format!("needs `fault = \"…\"` (one of {})", FaultKind::known()))?
        .1;
    let fault: FaultKind = fault.clone().try_into().map_err(|_| {
        let written = fault
            .as_str()
            .map_or_else(|| fault.to_string(), str::to_owned);
        format!("unknown fault `{written}` (known: {})", FaultKind::known())
    })?;
    let at = as_str(take(&mut table, "at"))?
        .ok_or("needs `at`, the start from the steady window's beginning, e.g. \"10s\"")?;
    let at = parse_duration(&at).map_err(|m| format!("at: {m}"))?;
    let duration = as_str(take(&mut table, "duration"))?.ok_or("needs `duration`, e.g. \"10s\"")?;
    let duration = parse_duration(&duration).map_err(|m| format!("duration: {m}"))?;
    let fault = match fault {
        FaultKind::KillInstance => {
            let instance = parse_pick(take(&mut table, "instance"), instances)?;
            let how = match as_str(take(&mut table, "signal"))?.as_deref() {
                None | Some("KILL" | "SIGKILL") => Stop::Kill,
                Some("TERM" | "SIGTERM") => Stop::Terminate,
                Some(other) => return Err(format!("signal `{other}`: use KILL or TERM")),
            };
            Fault::KillInstance { instance, how }
        }
        FaultKind::FreezeInstance => Fault::FreezeInstance {
            instance: parse_pick(take(&mut table, "instance"), instances)?,
        },
        FaultKind::Toxic => {
            let on = match as_str(take(&mut table, "proxy"))?.as_deref() {
                None | Some("front") => ProxyLink::Front,
                Some("redis") => ProxyLink::Redis,
                Some("database") => ProxyLink::Database,
                Some(other) => {
                    return Err(format!(
                        "proxy `{other}`: use \"front\", \"redis\" or \"database\""
                    ));
                }
            };
            // The rest of the table is a Toxiproxy toxic: type, stream, toxicity, attributes.
            let mut toxic_table = toml::Table::new();
            for key in ["name", "type", "stream", "toxicity", "attributes"] {
                if let Some(value) = table.remove(key) {
                    toxic_table.insert(key.to_owned(), value);
                }
            }
            toxic_table
                .entry("name")
                .or_insert_with(|| toml::Value::String("experiment".into()));
            let given: Vec<String> = toxic_table
                .get("attributes")
                .and_then(toml::Value::as_table)
                .map(|a| a.keys().cloned().collect())
                .unwrap_or_default();
            let json = serde_json::to_value(&toxic_table).map_err(|e| e.to_string())?;
            let toxic: Toxic = serde_json::from_value(json).map_err(|e| format!("toxic: {e}"))?;
            toxic.validate().map_err(|e| format!("toxic: {e}"))?;
            // Toxiproxy ignores unknown attributes; a drill must not silently do less.
            let known = serde_json::to_value(&toxic.kind).map_err(|e| e.to_string())?;
            let names = known["attributes"]
                .as_object()
                .map(|a| a.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default();
            if let Some(unknown) = given.iter().find(|k| !names.contains(k)) {
                return Err(format!(
                    "toxic: `{unknown}` is not an attribute of {} (known: {})",
                    known["type"].as_str().unwrap_or("this toxic"),
                    names.join(", ")
                ));
            }
            Fault::Toxic { toxic, on }
        }
        FaultKind::ExhaustDb => Fault::ExhaustDb {
            sessions: as_count(take(&mut table, "sessions"), 200)?,
        },
        FaultKind::Slowloris => Fault::Slowloris {
            connections: as_count(take(&mut table, "connections"), 500)?,
        },
        FaultKind::DiskFill => {
            let percent = match take(&mut table, "percent") {
                None => 100.0,
                Some((_, toml::Value::Integer(n))) => n as f64,
                Some((_, toml::Value::Float(f))) => f,
                Some((_, other)) => {
                    return Err(format!("`percent` must be a number (got {other})"));
                }
            };
            if !(0.0..=100.0).contains(&percent) {
                return Err(format!("percent {percent} is outside 0 to 100"));
            }
            Fault::DiskFill { percent }
        }
        FaultKind::RedisDown => Fault::RedisDown,
    };
    if let Some(key) = table.keys().next() {
        let hint = if ["rollbacks", "title", "description", "instances"].contains(&key.as_str()) {
            " (top-level keys go above the first [table] of the file)"
        } else {
            ""
        };
        return Err(format!(
            "`{key}` is not a setting of fault {}{hint}",
            fault.name()
        ));
    }
    Ok(Step {
        at,
        duration,
        fault,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
title = "Kill one"
instances = 2
rollbacks = ["restart-instances"]
[load]
rate = "100"
warmup = "2s"
duration = "20s"
[[method]]
fault = "kill-instance"
at = "5s"
duration = "2s"
signal = "TERM"
instance = 1
[[method]]
fault = "toxic"
at = "10s"
duration = "3s"
type = "latency"
attributes = { latency = 200, jitter = 20 }
[safeguard]
objectives = ["rate(errors) < 50%", "p(99) < 5s"]
for = "5s"
[alerts]
expect = "AimateInstanceDown"
time_scale = "1/60"
"#;

    #[test]
    fn a_good_file_parses_into_steps() {
        let experiment = Experiment::parse(GOOD, "good.toml").unwrap();
        assert_eq!(experiment.instances, 2);
        assert_eq!(experiment.rate, 100.0);
        assert_eq!(experiment.method.len(), 2);
        assert_eq!(
            experiment.method[0].fault,
            Fault::KillInstance {
                instance: Pick::Index(1),
                how: Stop::Terminate
            }
        );
        assert_eq!(experiment.method[1].at, Duration::from_secs(10));
        assert!(matches!(
            experiment.method[1].fault,
            Fault::Toxic {
                on: ProxyLink::Front,
                ..
            }
        ));
        assert_eq!(
            (experiment.database, experiment.redis),
            (DatabaseKind::Sqlite, false)
        );
        assert!(experiment.needs_proxy());
        let guard = experiment.safeguard.unwrap();
        assert_eq!(guard.max_error_rate, Some(0.5));
        assert_eq!(guard.max_latency, Some((99.0, Duration::from_secs(5))));
        assert_eq!(guard.for_seconds, 5);
        assert_eq!(
            experiment.alerts.expect.as_deref(),
            Some("AimateInstanceDown")
        );
        assert!((experiment.alerts.time_scale - 1.0 / 60.0).abs() < 1e-12);
    }

    #[test]
    fn alerts_default_to_none_expected_at_a_thirtieth() {
        let text = GOOD.split("[alerts]").next().unwrap();
        let experiment = Experiment::parse(text, "good.toml").unwrap();
        assert_eq!(experiment.alerts, AlertPlan::default());
        let none = Experiment::parse(&format!("{text}[alerts]\nexpect = \"none\"\n"), "x").unwrap();
        assert_eq!(none.alerts.expect, None);
        for (scale, message) in [
            ("0", "must be above 0"),
            ("2", "at most 1"),
            ("a/b", "not a fraction"),
        ] {
            let bad = format!("{text}[alerts]\nexpect = \"none\"\ntime_scale = \"{scale}\"\n");
            let error = Experiment::parse(&bad, "x.toml").unwrap_err().to_string();
            assert!(error.contains(message), "{scale}: {error}");
        }
    }

    #[test]
    fn fault_and_rollback_names_are_spelled_once() {
        let faults: Vec<String> = FaultKind::ALL.map(FaultKind::name).to_vec();
        assert_eq!(
            faults,
            [
                "kill-instance",
                "freeze-instance",
                "toxic",
                "exhaust-db",
                "slowloris",
                "disk-fill",
                "redis-down"
            ]
        );
        for kind in FaultKind::ALL {
            let parsed: FaultKind = toml::Value::String(kind.name()).try_into().unwrap();
            assert_eq!(parsed, kind);
        }
        let rollbacks: Vec<String> = Rollback::ALL.map(Rollback::name).to_vec();
        assert_eq!(
            rollbacks,
            ["restart-instances", "reset-toxics", "free-disk"]
        );
    }

    const FLEET: &str = r#"
title = "Redis faults on a fleet"
[target]
instances = 3
database = "postgres"
redis = true
[load]
rate = "1k"
warmup = "2s"
duration = "30s"
[[method]]
fault = "redis-down"
at = "5s"
duration = "5s"
[[method]]
fault = "toxic"
proxy = "redis"
at = "15s"
duration = "5s"
type = "latency"
attributes = { latency = 200 }
"#;

    #[test]
    fn a_fleet_target_and_its_redis_faults_parse() {
        let experiment = Experiment::parse(FLEET, "fleet.toml").unwrap();
        assert_eq!(experiment.instances, 3);
        assert_eq!(experiment.database, DatabaseKind::Postgres);
        assert!(experiment.redis);
        assert_eq!(experiment.method[0].fault, Fault::RedisDown);
        assert!(matches!(
            experiment.method[1].fault,
            Fault::Toxic {
                on: ProxyLink::Redis,
                ..
            }
        ));
        // Toxics on the Redis link need no proxy in front of the target.
        assert!(!experiment.needs_proxy());
    }

    #[test]
    fn fleet_targets_refuse_what_they_cannot_run() {
        let cases = [
            (
                FLEET.replace("redis = true\n", ""),
                "redis-down acts on the fleet's Redis: set `redis = true` in [target]",
            ),
            (
                FLEET.replace("\"postgres\"", "\"mysql\""),
                "unknown database `mysql` (known: sqlite, postgres)",
            ),
            (
                FLEET.replace("[target]", "instances = 2\n[target]"),
                "instances is given twice",
            ),
            (
                FLEET.replace("proxy = \"redis\"", "proxy = \"dns\""),
                "proxy `dns`: use \"front\", \"redis\" or \"database\"",
            ),
            (
                FLEET.replace("instances = 3", "instances = 0"),
                "instances must be 1 to 16",
            ),
        ];
        for (text, says) in cases {
            let error = Experiment::parse(&text, "x.toml").unwrap_err();
            assert!(error.message.contains(says), "{error}");
            assert!(error.line > 1, "the line at fault is named: {error}");
        }
    }

    #[test]
    fn bad_files_say_where_and_what() {
        let cases = [
            (
                GOOD.replace("\"kill-instance\"", "\"explode\""),
                "unknown fault `explode`",
            ),
            (
                GOOD.replace("duration = \"2s\"", "duration = \"-2s\""),
                "negative",
            ),
            (
                GOOD.replace("\"rate(errors) < 50%\"", "\"speed > 3%\""),
                "unknown metric `speed`",
            ),
            (
                GOOD.replace("instance = 1", "instance = 5"),
                "instance 5 does not exist",
            ),
            (
                GOOD.replace("signal = \"TERM\"", "signal = \"HUP\""),
                "use KILL or TERM",
            ),
            (
                GOOD.replace("at = \"10s\"", "at = \"19s\""),
                "after the steady window",
            ),
            (
                GOOD.replace("jitter = 20", "jitter = 20, wobble = 3"),
                "wobble",
            ),
            (
                GOOD.replace("\"restart-instances\"", "\"pray\""),
                "unknown variant `pray`, expected one of `restart-instances`, `reset-toxics`, `free-disk`",
            ),
            (
                GOOD.replace("signal = \"TERM\"", "signal = \"TERM\"\ncolour = \"red\""),
                "`colour` is not a setting",
            ),
            (
                GOOD.replace("p(99) < 5s", "ratio(memory) < 5%"),
                "a safeguard watches",
            ),
            (
                GOOD.replace("title = \"Kill one\"", ""),
                "missing field `title`",
            ),
        ];
        for (text, says) in cases {
            let error = Experiment::parse(&text, "x.toml")
                .expect_err(says)
                .to_string();
            assert!(error.starts_with("x.toml:"), "{error}");
            assert!(error.contains(says), "expected {says:?} in: {error}");
        }
    }

    #[test]
    fn errors_name_the_line() {
        let text = GOOD.replace("\"kill-instance\"", "\"explode\"");
        let error = Experiment::parse(&text, "x.toml").unwrap_err();
        // The first [[method]] table starts on line 8.
        assert!((8..=12).contains(&error.line), "line {}", error.line);
    }

    const DOCKER: &str = r#"
title = "Freeze a replica"
rollbacks = ["restart-instances"]
[target]
kind = "docker"
labels = { "com.docker.compose.project" = "aimate", "com.docker.compose.service" = "aimate" }
instances = 3
url = "http://127.0.0.1:8080"
proxy_api = "http://127.0.0.1:8474"
proxies = { database = "pg" }
[load]
rate = "50"
warmup = "2s"
duration = "30s"
[[method]]
fault = "freeze-instance"
at = "5s"
duration = "5s"
[[method]]
fault = "toxic"
proxy = "database"
at = "12s"
duration = "5s"
type = "latency"
attributes = { latency = 100 }
"#;

    #[test]
    fn a_docker_target_names_its_containers_links_and_bound() {
        let experiment = Experiment::parse(DOCKER, "d.toml").unwrap();
        let TargetKind::Docker(docker) = &experiment.kind else {
            panic!("not a docker target: {:?}", experiment.kind);
        };
        assert_eq!(experiment.instances, 3, "the most containers it may touch");
        assert_eq!(docker.labels.len(), 2);
        assert_eq!(docker.labels["com.docker.compose.service"], "aimate");
        assert_eq!(docker.url.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(docker.port, 8080);
        assert_eq!(docker.proxy_name(ProxyLink::Database), "pg");
        assert_eq!(
            docker.proxy_name(ProxyLink::Redis),
            "redis",
            "default: the link"
        );
        assert!(matches!(
            experiment.method[1].fault,
            Fault::Toxic {
                on: ProxyLink::Database,
                ..
            }
        ));
        assert!(!experiment.needs_volume());
    }

    #[test]
    fn a_docker_target_refuses_what_it_cannot_do_at_parse_time() {
        let with = |from: &str, to: &str| {
            assert!(DOCKER.contains(from), "{from}");
            let error = Experiment::parse(&DOCKER.replacen(from, to, 1), "d.toml")
                .expect_err(to)
                .to_string();
            assert!(
                error.starts_with("d.toml:"),
                "names the file and line: {error}"
            );
            error
        };
        let disk = with(
            "fault = \"freeze-instance\"",
            "fault = \"disk-fill\"\npercent = 90",
        );
        assert!(disk.contains("a container's disk is not ours"), "{disk}");
        let slowloris = with("fault = \"freeze-instance\"", "fault = \"slowloris\"");
        assert!(slowloris.contains("slowloris needs"), "{slowloris}");
        let no_api = with(
            "proxy_api = \"http://127.0.0.1:8474\"\nproxies = { database = \"pg\" }\n",
            "",
        );
        assert!(
            no_api.contains("needs the deployment's fault proxy"),
            "{no_api}"
        );
        assert!(no_api.contains("method 2"), "names the step: {no_api}");
        let no_bound = with("instances = 3\n", "");
        assert!(no_bound.contains("needs `instances`"), "{no_bound}");
        let no_labels = with(
            "labels = { \"com.docker.compose.project\" = \"aimate\", \"com.docker.compose.service\" = \"aimate\" }\n",
            "",
        );
        assert!(no_labels.contains("needs `labels`"), "{no_labels}");
        let empty = with(
            "labels = { \"com.docker.compose.project\" = \"aimate\", \"com.docker.compose.service\" = \"aimate\" }",
            "labels = {}",
        );
        assert!(empty.contains("at least one label"), "{empty}");
        let own_setting = with("instances = 3", "instances = 3\nredis = true");
        assert!(
            own_setting.contains("shapes a target aimate starts"),
            "{own_setting}"
        );
        let unknown_link = with("database = \"pg\"", "disk = \"pg\"");
        assert!(
            unknown_link.contains("unknown link `disk`"),
            "{unknown_link}"
        );
        let kind = with("kind = \"docker\"", "kind = \"kubernetes\"");
        assert!(kind.contains("unknown target kind `kubernetes`"), "{kind}");
        let url = with(
            "url = \"http://127.0.0.1:8080\"",
            "url = \"127.0.0.1:8080\"",
        );
        assert!(url.contains("must be an http://"), "{url}");
    }

    #[test]
    fn deployment_settings_on_an_own_target_and_a_database_toxic_are_refused() {
        let error = Experiment::parse(
            &GOOD.replace("[load]", "[target]\nlabels = { a = \"b\" }\n[load]"),
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("add `kind = \"docker\"`"), "{error}");
        let error = Experiment::parse(
            &GOOD.replace(
                "type = \"latency\"",
                "proxy = \"database\"\ntype = \"latency\"",
            ),
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("has no database proxy"), "{error}");
    }

    #[test]
    fn redis_down_on_a_deployment_needs_its_container_or_its_proxy() {
        let text = DOCKER
            .replace(
                "proxy_api = \"http://127.0.0.1:8474\"\nproxies = { database = \"pg\" }\n",
                "",
            )
            .replace(
                "fault = \"toxic\"\nproxy = \"database\"",
                "fault = \"redis-down\"",
            )
            .replace("type = \"latency\"\nattributes = { latency = 100 }\n", "");
        let error = Experiment::parse(&text, "d.toml").unwrap_err().to_string();
        assert!(error.contains("needs `redis_labels`"), "{error}");
        let with_labels = text.replace(
            "instances = 3",
            "instances = 3\nredis_labels = { \"com.docker.compose.service\" = \"redis\" }",
        );
        let experiment = Experiment::parse(&with_labels, "d.toml").unwrap();
        assert_eq!(experiment.method[1].fault, Fault::RedisDown);
    }
}
