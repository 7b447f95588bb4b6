//! The server's side of a run, scraped once a second: through the target, or each
//! instance on its own address (never through a balancer, which would hand every scrape
//! to another process and mix their counters).
//!
//! Every instance of a round is scraped at once and filed under the round's start time;
//! a scrape that fails or takes longer than a round is a gap (`up: false`), not a value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aimate_reports::record::{ServerSample, ServerSource};

use crate::api::{Api, ApiError};
use crate::scrape::sample_from_text;

/// Where the server-side series come from.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ServerSeries {
    /// `/api/metrics` of the load's own target (one process, or a balancer that the
    /// grader then detects and refuses).
    #[default]
    Target,
    /// Each instance's metrics, scraped directly: `http://host:port` (its
    /// `/api/metrics`) or a full metrics URL.
    Instances(Vec<String>),
    /// Read from an existing Prometheus after the run (see [`crate::prometheus`]).
    Prometheus {
        url: String,
        /// Extra label matchers for every query, e.g. `job="aimate"`.
        selector: String,
    },
}

impl ServerSeries {
    /// What the record says about where its series came from.
    pub fn source(&self) -> ServerSource {
        match self {
            Self::Target => ServerSource::Target,
            Self::Instances(urls) => ServerSource::Instances {
                urls: urls.iter().map(|u| metrics_url(u)).collect(),
            },
            Self::Prometheus { url, .. } => ServerSource::Prometheus {
                url: aimate_reports::redact::redact_url(url),
            },
        }
    }
}

/// `http://host:port` → `http://host:port/api/metrics`; a URL with a path stays as given.
pub fn metrics_url(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/api/metrics")
    }
}

/// The instance name a URL is filed under: its `host:port`.
pub fn instance_name(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or(after_scheme);
    // Credentials never go into a record.
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

/// Longest a scrape may take: a frozen instance must not stall the others' rounds.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(900);

/// One scrape source: a name and how to fetch its page.
#[derive(Clone)]
struct Source {
    name: String,
    api: Api,
    /// `None`: the target's own `/api/metrics`.
    url: Option<String>,
}

impl Source {
    async fn fetch(&self) -> Result<String, ApiError> {
        match &self.url {
            None => self.api.metrics_text().await,
            Some(url) => self.api.fetch_text(url).await,
        }
    }
}

/// Scrapes every second until `running` goes false; returns the samples. With a live
/// view, each sample is also shown and kept for grading so far.
pub async fn scrape(
    series: ServerSeries,
    target: Api,
    run_start: Instant,
    running: Arc<AtomicBool>,
    live: Option<(aimate_live::PartFeed, crate::live::SamplesSoFar)>,
) -> Vec<ServerSample> {
    let sources: Vec<Source> = match &series {
        ServerSeries::Target => vec![Source {
            name: String::new(),
            api: target,
            url: None,
        }],
        ServerSeries::Instances(urls) => urls
            .iter()
            .map(|url| Source {
                name: instance_name(url),
                api: target.clone(),
                url: Some(metrics_url(url)),
            })
            .collect(),
        ServerSeries::Prometheus { .. } => return Vec::new(),
    };
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while running.load(Ordering::SeqCst) {
        tick.tick().await;
        let t_ms = u64::try_from(run_start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut round = tokio::task::JoinSet::new();
        for source in &sources {
            let source = source.clone();
            round.spawn(async move {
                let page = tokio::time::timeout(SCRAPE_TIMEOUT, source.fetch()).await;
                match page {
                    Ok(Ok(text)) if crate::scrape::looks_like_aimate(&text) => ServerSample {
                        instance: source.name.clone(),
                        ..sample_from_text(&text, t_ms)
                    },
                    _ => ServerSample::down(&source.name, t_ms),
                }
            });
        }
        while let Some(sample) = round.join_next().await {
            if let Ok(sample) = sample {
                if let Some((feed, so_far)) = &live {
                    feed.server(&sample);
                    so_far
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(sample.clone());
                }
                samples.push(sample);
            }
        }
    }
    samples.sort_by(|a, b| (a.t_ms, &a.instance).cmp(&(b.t_ms, &b.instance)));
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_urls_name_their_metrics_page_and_instance() {
        assert_eq!(
            metrics_url("http://10.0.0.1:8080"),
            "http://10.0.0.1:8080/api/metrics"
        );
        assert_eq!(
            metrics_url("http://10.0.0.1:8080/"),
            "http://10.0.0.1:8080/api/metrics"
        );
        assert_eq!(
            metrics_url("https://a.example/custom/metrics"),
            "https://a.example/custom/metrics"
        );
        assert_eq!(
            instance_name("http://10.0.0.1:8080/api/metrics"),
            "10.0.0.1:8080"
        );
        assert_eq!(instance_name("http://user:secret@h:9/x"), "h:9");
    }
}
