//! A deployment aimate did not start, as an experiment's target (`[target] kind =
//! "docker"`): a lease keeper first, then its containers selected and its proxies
//! checked (see `aimate_chaos::target::Target::docker`). Nothing of the deployment is
//! stopped at the end; whatever a fault still holds is undone, by the keeper if need be.

use std::sync::Arc;

use aimate_chaos::docker::Engine;
use aimate_chaos::experiment::DockerTarget;
use aimate_chaos::keeper::Keeper;
use aimate_chaos::target::{Target, TargetError};
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
    /// `--prometheus URL`: the deployment's own Prometheus, for its series and alerts.
    pub prometheus: Option<String>,
    /// `--prometheus-selector`.
    pub prometheus_selector: String,
}

impl DeploymentAccess {
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
        let target = Target::docker(
            spec,
            allowed,
            engine,
            url,
            database_url,
            access.proxy_token.clone(),
            keeper.clone(),
        )
        .await
        .map_err(refusal)?;
        if let Some(missing) = target.missing(&experiment_steps) {
            return Err(Refused(missing).into());
        }
        Ok(Self {
            target: Arc::new(target),
            credentials,
            _keeper: ClosedOnDrop(keeper),
        })
    }
}
