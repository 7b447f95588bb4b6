//! A deployment aimate did not start, as an experiment's target (`[target] kind =
//! "docker"`): a lease keeper first, then its containers selected and its proxies
//! checked (see `aimate_chaos::target::Target::docker`). Nothing of the deployment is
//! stopped at the end; whatever a fault still holds is undone, by the keeper if need be.

use std::sync::Arc;

use aimate_chaos::docker::Engine;
use aimate_chaos::experiment::DockerTarget;
use aimate_chaos::keeper::Keeper;
use aimate_chaos::target::{Reach, Target, TargetError};
use aimate_loadgen::{Credentials, ServerSeries};
use anyhow::{Context, anyhow};

use super::own_target::ClosedOnDrop;

/// How to reach a deployment, from the command line.
#[derive(Debug, Clone, Default)]
pub struct DeploymentAccess {
    /// Where the load goes (`--target`); else the experiment's `url`.
    pub url: Option<String>,
    /// `--admin-token` (a tenant of the drill's own is created) or `--api-key`.
    pub credentials: Option<Credentials>,
    /// `--allow-remote-docker`: a `DOCKER_HOST` other than a local socket.
    pub allow_remote_docker: bool,
    /// Bearer token of the deployment's fault proxy API (`--proxy-token`).
    pub proxy_token: Option<String>,
    /// `--proxy-api URL`: instead of the file's `proxy_api`.
    pub proxy_api: Option<String>,
    /// `--compose-project NAME`: the project label every selector asks for.
    pub compose_project: Option<String>,
    /// `--prometheus URL`: the deployment's own Prometheus, for its series and alerts.
    pub prometheus: Option<String>,
    /// `--prometheus-selector`.
    pub prometheus_selector: String,
}

/// The label Compose puts on every container of a project.
const COMPOSE_PROJECT: &str = "com.docker.compose.project";

impl DeploymentAccess {
    /// The experiment's target with the command line's overrides applied.
    pub fn apply(&self, spec: &DockerTarget) -> DockerTarget {
        let mut spec = spec.clone();
        if let Some(api) = &self.proxy_api {
            spec.proxy_api = Some(api.clone());
        }
        if let Some(project) = &self.compose_project {
            for labels in std::iter::once(&mut spec.labels).chain(spec.redis_labels.as_mut()) {
                labels.insert(COMPOSE_PROJECT.to_owned(), project.clone());
            }
        }
        spec
    }

    /// Why an experiment on `spec` cannot run with this access, if it cannot.
    pub fn missing_for(&self, spec: &DockerTarget) -> Option<&'static str> {
        if self.url.is_none() && spec.url.is_none() {
            return Some("it drills a deployment: pass --target URL (its balancer) or set `url`");
        }
        if self.credentials.is_none() {
            return Some("it drills a deployment: pass --admin-token or --api-key");
        }
        None
    }

    /// Where the server series come from: the deployment's Prometheus, else each
    /// container's own metrics where the host can reach it.
    pub fn series(&self, instance_urls: Vec<String>) -> ServerSeries {
        match &self.prometheus {
            Some(url) => ServerSeries::Prometheus {
                url: url.clone(),
                selector: self.prometheus_selector.clone(),
            },
            None if instance_urls.is_empty() => ServerSeries::Target,
            None => ServerSeries::Instances(instance_urls),
        }
    }
}

/// The deployment, or the rules, refuse the experiment before anything is touched (no
/// container matches, more than allowed, a remote engine not allowed, a link missing):
/// a configuration error (exit 2), not a failed run.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refusal(error: TargetError) -> anyhow::Error {
    match error {
        TargetError::Docker(docker) if docker.is_refusal() => Refused(docker.to_string()).into(),
        other => other.into(),
    }
}

pub struct Deployment {
    // Field order is drop order: the target lets go of its leases before the keeper
    // closes (which undoes whatever is still held).
    pub target: Arc<Target>,
    pub credentials: Credentials,
    _keeper: ClosedOnDrop,
}

impl Deployment {
    pub async fn open(
        spec: &DockerTarget,
        allowed: usize,
        experiment_steps: &[aimate_chaos::experiment::Step],
        access: &DeploymentAccess,
        database_url: Option<String>,
    ) -> anyhow::Result<Self> {
        let spec = &access.apply(spec);
        let url = access
            .url
            .clone()
            .or_else(|| spec.url.clone())
            .ok_or_else(|| anyhow!("a deployment's experiment needs --target URL"))?;
        let credentials = access
            .credentials
            .clone()
            .ok_or_else(|| anyhow!("a deployment's experiment needs --admin-token or --api-key"))?;
        let engine = Engine::from_env(access.allow_remote_docker)
            .map_err(|e| refusal(TargetError::Docker(e)))?;
        let exe = std::env::current_exe().context("cannot find the aimate binary")?;
        let keeper = Arc::new(Keeper::spawn(&exe, &["chaos", "keeper"])?);
        let reach = Reach {
            engine,
            url,
            database_url,
            proxy_token: access.proxy_token.clone(),
        };
        let target = Target::docker(spec, allowed, experiment_steps, reach, keeper.clone())
            .await
            .map_err(refusal)?;
        if let Some(missing) = target.missing(experiment_steps) {
            return Err(Refused(missing).into());
        }
        Ok(Self {
            target: Arc::new(target),
            credentials,
            _keeper: ClosedOnDrop(keeper),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimate_chaos::experiment::{Experiment, TargetKind};

    #[test]
    fn the_command_line_moves_the_project_and_the_proxy_api() {
        let text = r#"
title = "t"
[target]
kind = "docker"
instances = 3
labels = { "com.docker.compose.project" = "aimate", "com.docker.compose.service" = "aimate" }
redis_labels = { "com.docker.compose.project" = "aimate", "com.docker.compose.service" = "redis" }
proxy_api = "http://127.0.0.1:8474"
[load]
rate = "10"
warmup = "1s"
duration = "10s"
[[method]]
fault = "redis-down"
at = "1s"
duration = "1s"
"#;
        let experiment = Experiment::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let TargetKind::Docker(spec) = &experiment.kind else {
            panic!("not a docker target");
        };
        let access = DeploymentAccess {
            compose_project: Some("staging".into()),
            proxy_api: Some("http://127.0.0.1:9474".into()),
            ..DeploymentAccess::default()
        };
        let applied = access.apply(spec);
        assert_eq!(applied.labels[COMPOSE_PROJECT], "staging");
        assert_eq!(applied.labels["com.docker.compose.service"], "aimate");
        let redis = applied.redis_labels.unwrap_or_default();
        assert_eq!(redis[COMPOSE_PROJECT], "staging");
        assert_eq!(redis["com.docker.compose.service"], "redis");
        assert_eq!(applied.proxy_api.as_deref(), Some("http://127.0.0.1:9474"));
        assert_eq!(
            DeploymentAccess::default().apply(spec),
            *spec,
            "nothing given, nothing moved"
        );

        let missing = DeploymentAccess::default()
            .missing_for(spec)
            .unwrap_or_default();
        assert!(missing.contains("--target"), "{missing}");
        let with_url = DeploymentAccess {
            url: Some("http://127.0.0.1:8080".into()),
            ..DeploymentAccess::default()
        };
        let missing = with_url.missing_for(spec).unwrap_or_default();
        assert!(missing.contains("--admin-token"), "{missing}");
    }
}
