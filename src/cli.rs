//! Command-line definitions (clap). Parsing only: commands live in `commands/`.

use std::path::PathBuf;

use aimate_server::ServerConfig;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "aimate",
    version,
    about = "The AI Mate reference API and the harness that proves its SLOs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the AI Mate API server (SQLite in --data-dir by default, PostgreSQL with DATABASE_URL).
    Serve(Box<ServerConfig>),
    /// Manage tenants (businesses) and their API keys.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Drive a target at a ladder of exact request rates and write a RunRecord (JSON);
    /// `aimate load prepare` makes and seeds the tenants of a distributed run once.
    Load(Box<LoadCommand>),
    /// Grade a RunRecord against slo.toml and write the reports: index.html (charts, for a
    /// person), report.md, report.json and junit.xml.
    Report(ReportArgs),
    /// The main job: start the server, run the 100 / 1k / 10k ladder and the chaos
    /// drills, grade, and write the reports (index.html to open, Markdown, JSON, JUnit).
    Drill(Box<DrillArgs>),
    /// Fault injection.
    #[command(subcommand)]
    Chaos(ChaosCommand),
    /// Grafana dashboards and Prometheus rules, generated from slo.toml.
    #[command(subcommand)]
    Dashboards(DashboardsCommand),
    /// The objectives built into the binary.
    #[command(subcommand)]
    Slo(SloCommand),
    /// Exit 0 when a server answers 200, else 1: a container HEALTHCHECK or exec probe
    /// that needs no curl and no shell.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// A full URL, or a path on the server this environment configures (the address
    /// `aimate serve` would listen on here: AIMATE_BIND, else PORT, else 8080; a wildcard
    /// address is probed on loopback).
    #[arg(default_value = "/api/health")]
    pub target: String,
    /// Give up (exit 1) when no full answer came within this time.
    #[arg(long, default_value = "2s", value_parser = aimate_reports::duration::parse)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum SloCommand {
    /// Print the built-in slo.toml (the guide's objectives) to start a file of your own.
    Print,
}

#[derive(Debug, Subcommand)]
pub enum DashboardsCommand {
    /// Write the Grafana dashboard, its provisioning, the Prometheus configuration, the
    /// recording and alert rules with their promtool tests, and the runbook.
    Generate {
        /// The objectives (thresholds, SLOs and their budgets). Default: ./slo.toml,
        /// else the built-in one.
        #[arg(long)]
        slo: Option<PathBuf>,
        /// The directory to write into.
        #[arg(long, default_value = "dashboards")]
        out: PathBuf,
        /// Also write the deployments' copies (the Kubernetes PrometheusRule and dashboard
        /// ConfigMap, the compose stack's Prometheus and Grafana files) under this
        /// directory, e.g. `deploy` in the checkout.
        #[arg(long, value_name = "DIR")]
        deploy: Option<PathBuf>,
        /// Write nothing: exit 1 if a file there differs from what would be generated.
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// Run the fault proxy's control API (Toxiproxy-compatible) until SIGTERM/SIGINT.
    Proxy {
        /// Address of the control API. Loopback only, unless a token is set.
        #[arg(long, default_value = "127.0.0.1:8474")]
        api: std::net::SocketAddr,
        /// Bearer token every API call must carry.
        #[arg(long, env = "AIMATE_CHAOS_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Proxies to create at start-up: Toxiproxy's config file, a JSON array of
        /// {"name", "listen", "upstream", "enabled"}.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run one experiment file: start the target, load it, inject the method's faults,
    /// grade the hypothesis per phase, check no acknowledged write was lost.
    Run(Box<ChaosRunArgs>),
    /// The lease keeper (started by `chaos run` and `drill`; undoes faults if they crash).
    #[command(hide = true)]
    Keeper,
    /// List the built-in experiments, or write them into a directory to edit.
    Experiments {
        /// Write them here (created if missing) instead of listing them.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ChaosRunArgs {
    /// The experiment (TOML); see chaos/experiments/.
    pub file: PathBuf,
    /// The objectives: `[phase]` is the default hypothesis, `count(lost_writes)` is kept.
    /// Default: ./slo.toml, else the built-in one.
    #[arg(long)]
    pub slo: Option<PathBuf>,
    /// PostgreSQL: `database = "postgres"` experiments run in a schema of their own on
    /// it (dropped afterwards); others run on it as it is instead of a SQLite file.
    #[arg(long, env = "AIMATE_CHAOS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis of `redis = true` experiments (keys under a prefix of the run's own,
    /// reached through a fault proxy of the run's).
    #[arg(long, env = "AIMATE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Parent directory of the report directory (named by its UTC start time).
    #[arg(long, default_value = "reports/out")]
    pub out_dir: PathBuf,
    /// Append a CI job summary (Markdown: verdict, failures first, regressions) to this
    /// file, e.g. "$GITHUB_STEP_SUMMARY"; `-` writes it to stdout.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    #[command(flatten)]
    pub deployment: DeploymentArgs,
    #[command(flatten)]
    pub live: LiveArgs,
}

/// How to reach a deployment aimate did not start (`[target] kind = "docker"`).
#[derive(Debug, Args, Clone)]
pub struct DeploymentArgs {
    /// Where a deployment's load goes (its balancer), instead of the file's `url`.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Admin token of the deployment (the drill creates a tenant of its own).
    #[arg(long, env = "AIMATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// API key of a tenant of the deployment, instead of an admin token.
    #[arg(long, env = "AIMATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Allow a DOCKER_HOST that is not a local socket: its containers are on another
    /// machine, and breaking them must be asked for.
    #[arg(long)]
    pub allow_remote_docker: bool,
    /// Bearer token of the deployment's fault proxy API (`proxy_api`).
    #[arg(long, env = "AIMATE_CHAOS_TOKEN", hide_env_values = true)]
    pub proxy_token: Option<String>,
    /// The deployment's fault proxy API, instead of the file's `proxy_api`.
    #[arg(long, value_name = "URL")]
    pub proxy_api: Option<String>,
    /// Drill this compose project: replaces `com.docker.compose.project` in the file's
    /// selectors (the same drills against staging and production).
    #[arg(long, value_name = "NAME")]
    pub compose_project: Option<String>,
    /// The deployment's own Prometheus: its series and its alerts (time(detect) under
    /// the rules as deployed).
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Label matchers added to every Prometheus query, e.g. `job="aimate"`.
    #[arg(long, value_name = "MATCHERS", default_value = "")]
    pub prometheus_selector: String,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// For CI, in about a minute: a short ladder (100 and 1k req/s, 5 s each) and one
    /// short chaos experiment (an instance kill) instead of every drill.
    #[arg(long)]
    pub quick: bool,
    /// Drill an already running deployment instead of starting a server.
    #[arg(long)]
    pub target: Option<String>,
    /// Admin token of --target (to create the drill's tenant).
    #[arg(long, env = "AIMATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// API key of a tenant of --target, instead of an admin token.
    #[arg(long, env = "AIMATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Tenants to create (with --admin-token), seed and drive, each at an equal share of
    /// the rate. A deployment limits each API key (200 req/s by default), so drilling one
    /// at 1k req/s takes N × its limit ≥ the highest stage; `auto` reads the target's
    /// advertised limit and keeps each tenant under 80 % of it.
    #[arg(long, default_value = "1", value_parser = parse_tenants)]
    pub tenants: aimate_loadgen::Tenants,
    /// Drill the guide's Stage 2 instead of one server: N instances (2 to 16) behind
    /// HAProxy, on PostgreSQL (--database-url) and sharing Redis (--redis-url), each run
    /// in a schema and key prefix of its own, removed afterwards. Also graded on
    /// slo.toml's `[fleet]` objectives. Default ladder 100,1k.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=16), conflicts_with = "target")]
    pub fleet: Option<u16>,
    /// PostgreSQL of --fleet and of the experiments on it (each run in a schema of its
    /// own, dropped afterwards).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis of --fleet and of the experiments on it (cache L2 and rate limiter; keys
    /// under a prefix of the run's own).
    #[arg(long, env = "AIMATE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Pool size of each --fleet instance; instances × this must fit PostgreSQL's
    /// max_connections.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_max: u32,
    /// Stage rates (default 100,1k,10k; with --quick or --fleet 100,1k).
    #[arg(long)]
    pub stages: Option<String>,
    /// Graded window of each stage (default 30s; with --quick 5s).
    #[arg(long)]
    pub duration: Option<String>,
    /// Warm-up of each stage (default 5s; with --quick 2s).
    #[arg(long)]
    pub warmup: Option<String>,
    /// The objectives. Default: ./slo.toml, else the built-in one (`aimate slo print`).
    #[arg(long)]
    pub slo: Option<PathBuf>,
    /// Parent directory of the run's report directory (named by its UTC start time).
    #[arg(long, default_value = "reports/out")]
    pub out_dir: PathBuf,
    /// Skip the chaos experiments that follow the ladder.
    #[arg(long)]
    pub no_chaos: bool,
    /// The experiments run after the ladder (every *.toml, in name order). Default:
    /// ./chaos/experiments, else the built-in ones (`aimate chaos experiments`). With
    /// --target, those of a deployment (`kind = "docker"`, e.g.
    /// chaos/experiments/compose) run against it.
    #[arg(long)]
    pub experiments: Option<PathBuf>,
    /// Allow a DOCKER_HOST that is not a local socket (deployment experiments).
    #[arg(long)]
    pub allow_remote_docker: bool,
    /// Bearer token of the deployment's fault proxy API (deployment experiments).
    #[arg(long, env = "AIMATE_CHAOS_TOKEN", hide_env_values = true)]
    pub proxy_token: Option<String>,
    /// The deployment's fault proxy API, instead of the files' `proxy_api`.
    #[arg(long, value_name = "URL")]
    pub proxy_api: Option<String>,
    /// Replaces `com.docker.compose.project` in the deployment experiments' selectors.
    #[arg(long, value_name = "NAME")]
    pub compose_project: Option<String>,
    /// Append a CI job summary (Markdown: verdict, failures first, regressions) to this
    /// file, e.g. "$GITHUB_STEP_SUMMARY"; `-` writes it to stdout.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    #[command(flatten)]
    pub baseline: BaselineArgs,
    #[command(flatten)]
    pub server_series: ServerSeriesArgs,
    #[command(flatten)]
    pub live: LiveArgs,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: Option<ReportCommand>,
    /// The RunRecord to grade.
    #[arg(required = true)]
    pub record: Option<PathBuf>,
    /// The objectives. Default: ./slo.toml, else the built-in one (`aimate slo print`).
    #[arg(long)]
    pub slo: Option<PathBuf>,
    /// Directory for index.html, report.json, report.md and junit.xml.
    #[arg(long, default_value = "reports/out")]
    pub out: PathBuf,
    /// Append a CI job summary (Markdown: verdict, failures first, regressions) to this
    /// file, e.g. "$GITHUB_STEP_SUMMARY"; `-` writes it to stdout.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    #[command(flatten)]
    pub baseline: BaselineArgs,
}

/// Comparing a run with an earlier one.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// An earlier RunRecord, or a directory of them (e.g. the main branch's last runs):
    /// every graded figure is compared with its figure there, against run-to-run noise.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Fail when a figure got worse than the baseline by more than this percentage, with
    /// 95 % confidence (the whole interval of the change beyond it).
    #[arg(long, requires = "baseline")]
    pub max_regression: Option<f64>,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Merge RunRecords of the same plan from several load generators, exactly.
    Merge {
        /// The records to merge: a distributed run's segments (each index once), or
        /// whole runs of one plan from several generators.
        #[arg(required = true, num_args = 1..)]
        records: Vec<PathBuf>,
        /// Where to write the merged record.
        #[arg(short, long)]
        out: PathBuf,
        /// Merge a distributed run with segments missing: every stage is then INVALID,
        /// naming them (without it, a missing segment is exit 2).
        #[arg(long)]
        allow_missing: bool,
        /// Take the server's series for the run's window from this Prometheus (its HTTP
        /// API) instead of the lowest segment's scrape: every instance, read once.
        #[arg(long, value_name = "URL")]
        prometheus: Option<String>,
        /// Label matchers added to every Prometheus query, e.g. `job="aimate-prod"`.
        #[arg(
            long,
            value_name = "MATCHERS",
            requires = "prometheus",
            default_value = ""
        )]
        prometheus_selector: String,
    },
}

/// `aimate load [FLAGS]` runs the load; `aimate load prepare` makes its tenants first.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LoadCommand {
    #[command(subcommand)]
    pub prepare: Option<LoadSubcommand>,
    #[command(flatten)]
    pub run: LoadArgs,
}

#[derive(Debug, Subcommand)]
pub enum LoadSubcommand {
    /// Make and seed the tenants of a distributed run once, before its segments start,
    /// and write their API keys to a file (owner-only; a Kubernetes Secret can hold it)
    /// that every segment takes with `--keys`.
    Prepare(PrepareArgs),
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Base URL of the AI Mate API under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Admin token of the target, to create the tenants.
    #[arg(long, env = "AIMATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Seed this one existing tenant instead of creating any.
    #[arg(long, env = "AIMATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Tenants to create, each driven at an equal share of the run's rate; `auto`: as
    /// many as keep each under 80 % of the target's advertised per-key limit at the
    /// fastest of --stages.
    #[arg(long, default_value = "1", value_parser = parse_tenants)]
    pub tenants: aimate_loadgen::Tenants,
    /// The run's stage rates (only `--tenants auto` reads them).
    #[arg(long, default_value = "100,1k,10k")]
    pub stages: String,
    /// Invoices each tenant should have (with `auto`, split between the tenants).
    #[arg(long, default_value_t = 500)]
    pub seed_invoices: u64,
    /// Jobs each tenant should have (with `auto`, split between the tenants).
    #[arg(long, default_value_t = 100)]
    pub seed_jobs: u64,
    /// Where to write the keys (one per line, readable by the owner only).
    #[arg(short, long, default_value = "tenant-keys.txt")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Base URL of the AI Mate API under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Request rates of the ladder's stages, in order (`k` = thousand).
    #[arg(long, default_value = "100,1k,10k")]
    pub stages: String,
    /// Warm-up before each stage's graded window (not graded).
    #[arg(long, default_value = "5s")]
    pub warmup: String,
    /// Graded (steady) window of each stage.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Where to write the RunRecord.
    #[arg(long, default_value = "run.json")]
    pub out: PathBuf,
    /// API key of the tenant to load (else a tenant is created with --admin-token).
    #[arg(long, env = "AIMATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Admin token of the target, to create a tenant for the run.
    #[arg(long, env = "AIMATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Drive the tenants in this keys file, made and seeded by `aimate load prepare`
    /// (instead of --api-key / --admin-token; nothing is seeded): each at an equal share
    /// of the rate.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Invoices the tenant should have before the run (seeded through the API).
    #[arg(long, default_value_t = 500)]
    pub seed_invoices: u64,
    /// Jobs the tenant should have before the run.
    #[arg(long, default_value_t = 100)]
    pub seed_jobs: u64,
    /// Tenants to create (with --admin-token), seed and drive, each at an equal share of
    /// the rate, as a SaaS of many small businesses sees them; `auto`: as many as keep
    /// each under 80 % of the target's advertised per-key limit at the fastest stage.
    #[arg(long, default_value = "1", value_parser = parse_tenants)]
    pub tenants: aimate_loadgen::Tenants,
    /// Traffic mix as NAME=WEIGHT pairs (actions: dashboard, list_invoices, list_jobs,
    /// get_preferences, get_invoice, create_invoice, create_job, bulk_invoices).
    /// Default: a realistic mix, mostly reads.
    #[arg(long)]
    pub weights: Option<String>,
    /// Most concurrent users (requests in flight) per stage.
    #[arg(long, default_value_t = 2000)]
    pub max_users: usize,
    /// Response time the user count is sized for: rate × this are kept available.
    #[arg(long, default_value = "100ms")]
    pub latency_budget: String,
    /// A request without response headers after this long counts as a timeout.
    #[arg(long, default_value = "10s")]
    pub timeout: String,
    /// Abort when more than this percentage of a second's requests fail…
    #[arg(long, default_value_t = 5.0)]
    pub abort_error_rate: f64,
    /// …for this many seconds in a row.
    #[arg(long, default_value = "10s")]
    pub abort_after: String,
    /// The objectives the live view grades the run against as it goes (`aimate report`
    /// grades the record). Default: ./slo.toml, else the built-in one.
    #[arg(long)]
    pub slo: Option<PathBuf>,
    /// Send segment I of N of the plan (I from 0): slot s of the plan's schedule is
    /// segment s mod N's, so N generators with I = 0…N−1 send exactly the plan. Merge
    /// their records with `aimate report merge`.
    #[arg(long, value_name = "I/N", conflicts_with = "segments")]
    pub segment: Option<String>,
    /// N segments, this one's index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job
    /// sets it).
    #[arg(long, value_name = "N")]
    pub segments: Option<u32>,
    /// Start the schedule at this instant, RFC 3339 UTC (2026-12-07T10:00:00Z) or
    /// +DURATION from now: segments given the same instant send together, and every
    /// stage's window follows from it and the plan alone.
    #[arg(long, value_name = "TIME|+DURATION")]
    pub start_at: Option<String>,
    /// With --start-at: a stage whose first request leaves later than this after its
    /// planned instant is INVALID.
    #[arg(long, value_name = "DURATION", default_value = "5ms")]
    pub start_tolerance: String,
    #[command(flatten)]
    pub server_series: ServerSeriesArgs,
    #[command(flatten)]
    pub live: LiveArgs,
}

/// Watching a run in the browser while it goes.
#[derive(Debug, Args, Clone)]
pub struct LiveArgs {
    /// Serve a live view of the run on ADDR (default 127.0.0.1:5665): charts that update
    /// every second, the verdict so far, the reports when ready. Beyond loopback
    /// (e.g. 0.0.0.0:5665) the page needs a token, printed once at start.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = aimate_live::DEFAULT_ADDR)]
    pub live: Option<std::net::SocketAddr>,
    /// Keep serving the live view this long after the run, to open its reports from it.
    #[arg(long, value_name = "DURATION", default_value = "0s", requires = "live")]
    pub live_linger: String,
}

/// Where the server-side series (cache hits, pool, memory) of a `--target` come from.
/// Without either flag, the target's own /api/metrics is scraped: right for one
/// instance; behind a load balancer the grader detects the mix and grades nothing on it.
#[derive(Debug, Args)]
pub struct ServerSeriesArgs {
    /// Scrape this instance's metrics directly (`http://host:port`, or its full metrics
    /// URL); give once per instance behind the balancer.
    #[arg(long = "scrape", value_name = "URL", conflicts_with = "prometheus")]
    pub scrape: Vec<String>,
    /// Read the instances' series from this Prometheus after the run (its HTTP API).
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Label matchers added to every Prometheus query, e.g. `job="aimate-prod"`.
    #[arg(
        long,
        value_name = "MATCHERS",
        requires = "prometheus",
        default_value = ""
    )]
    pub prometheus_selector: String,
}

impl ServerSeriesArgs {
    pub fn series(&self) -> aimate_loadgen::ServerSeries {
        match (&self.prometheus, self.scrape.is_empty()) {
            (Some(url), _) => aimate_loadgen::ServerSeries::Prometheus {
                url: url.clone(),
                selector: self.prometheus_selector.clone(),
            },
            (None, false) => aimate_loadgen::ServerSeries::Instances(self.scrape.clone()),
            (None, true) => aimate_loadgen::ServerSeries::Target,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its API key (shown only this once) on stdout.
    Create {
        /// The business's display name.
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Give a tenant a new API key (printed on stdout, shown only this once); the old key
    /// stops working (on running servers within their 60 s auth cache).
    RotateKey {
        /// The tenant's id (`aimate tenant create` printed it).
        id: i64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a tenant's API key (on running servers within their 60 s auth cache);
    /// `rotate-key` issues a new one.
    RevokeKey {
        /// The tenant's id.
        id: i64,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Which database a command works on: the same flags and variables as `aimate serve`.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Directory of the embedded SQLite database (used when no DATABASE_URL is given).
    #[arg(long, env = "AIMATE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Database URL: `postgres://…` or `sqlite://…`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    pub fn server_config(&self) -> ServerConfig {
        let mut config = ServerConfig::with_data_dir(&self.data_dir);
        config.database_url.clone_from(&self.database_url);
        config
    }
}

/// `--tenants`: a count from 1 to 10,000, or `auto`.
fn parse_tenants(text: &str) -> Result<aimate_loadgen::Tenants, String> {
    if text.trim() == "auto" {
        return Ok(aimate_loadgen::Tenants::Auto);
    }
    match text.trim().parse::<usize>() {
        Ok(n @ 1..=10_000) => Ok(aimate_loadgen::Tenants::Count(n)),
        _ => Err(format!(
            "`{text}` is not a tenant count: give 1 to 10000, or auto"
        )),
    }
}
