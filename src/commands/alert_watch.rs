//! A real Prometheus watching a chaos experiment: the generated rules with their
//! durations scaled to the drill (see `aimate_monitoring::scaled_rules`), every instance
//! scraped each second, and its `/api/v1/alerts` polled each second into
//! `alert_firing` / `alert_resolved` events on the run's clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aimate_reports::record::{Event, EventKind, alert_detail};
use aimate_reports::spec::SloSpec;
use anyhow::Context;

use super::own_target::{TempDir, random_hex};

pub struct AlertWatch {
    /// Our own Prometheus, killed when the watch is dropped; `None` when the watch
    /// polls a deployment's own.
    child: Option<tokio::process::Child>,
    pub url: String,
    _dir: Option<TempDir>,
}

/// Where `prometheus` is, if it is installed.
pub fn find_prometheus() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
}

impl AlertWatch {
    /// Starts Prometheus on a free loopback port scraping `instances` (`host:port`),
    /// with the rules of `spec` scaled by `scale`; waits until it is ready. `None`
    /// when Prometheus is not installed.
    pub async fn start(
        spec: &SloSpec,
        instances: &[String],
        scale: f64,
    ) -> anyhow::Result<Option<Self>> {
        let Some(prometheus) = find_prometheus() else {
            return Ok(None);
        };
        let dir = TempDir::new(
            &std::env::temp_dir().join(format!("aimate-prometheus-{}", random_hex(6)?)),
        )?;
        let rules = aimate_monitoring::scaled_rules(spec, scale)?;
        std::fs::write(dir.path().join("rules.yml"), rules).context("cannot write rules.yml")?;
        let config = aimate_monitoring::drill_config(instances, "rules.yml");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).context("cannot write prometheus.yml")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("no free port for Prometheus")?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let child = tokio::process::Command::new(prometheus)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start prometheus")?;
        let watch = Self {
            child: Some(child),
            url,
            _dir: Some(dir),
        };
        watch.wait_ready().await?;
        Ok(Some(watch))
    }

    /// Watches a deployment's own Prometheus (its rules as deployed, unscaled).
    pub async fn external(url: &str) -> anyhow::Result<Self> {
        let watch = Self {
            child: None,
            url: url.trim_end_matches('/').to_owned(),
            _dir: None,
        };
        watch.wait_ready().await?;
        Ok(watch)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ready = client
                .get(format!("{}/-/ready", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("Prometheus at {} was not ready within 20 s", self.url)
    }

    /// Polls the alerts every second until `stop`; their changes as events on the clock
    /// that started at `run_start`.
    pub fn poll(
        &self,
        run_start: Instant,
        stop: Arc<AtomicBool>,
        live: Option<aimate_live::PartFeed>,
    ) -> tokio::task::JoinHandle<Vec<Event>> {
        let url = format!("{}/api/v1/alerts", self.url);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut firing: BTreeMap<String, String> = BTreeMap::new();
            let mut events = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let Some(now) = firing_alerts(&client, &url).await else {
                    continue;
                };
                let t_ms = u64::try_from(run_start.elapsed().as_millis()).unwrap_or(u64::MAX);
                let mut seen = Vec::new();
                for (key, detail) in &now {
                    if !firing.contains_key(key) {
                        seen.push(event(t_ms, EventKind::AlertFiring, detail));
                    }
                }
                for (key, detail) in &firing {
                    if !now.contains_key(key) {
                        seen.push(event(t_ms, EventKind::AlertResolved, detail));
                    }
                }
                if let Some(live) = &live {
                    for alert in &seen {
                        live.event(alert, None);
                    }
                }
                events.append(&mut seen);
                firing = now;
            }
            events
        })
    }

    pub async fn stop(mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill().await;
        }
    }
}

fn event(t_ms: u64, kind: EventKind, detail: &str) -> Event {
    Event {
        t_ms,
        kind,
        detail: detail.to_owned(),
        end_ms: None,
    }
}

/// The firing alerts now: a key per alert (name and labels) → its event detail.
async fn firing_alerts(client: &reqwest::Client, url: &str) -> Option<BTreeMap<String, String>> {
    let answer: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let mut firing = BTreeMap::new();
    for alert in answer["data"]["alerts"].as_array()? {
        if alert["state"] != "firing" {
            continue;
        }
        let labels = alert["labels"].as_object()?;
        let name = labels
            .get("alertname")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let severity = labels
            .get("severity")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let rest: Vec<String> = labels
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        let detail = alert_detail(name, severity, &rest.join(" "));
        firing.insert(detail.clone(), detail);
    }
    Some(firing)
}
