//! The seam between an experiment's process faults and what runs the instances: the
//! supervisor of a target aimate started ([`OwnInstances`]), the containers of a
//! deployment it did not ([`crate::docker::Containers`]), and, later, the pods of a
//! Kubernetes Deployment. The method only ever speaks to this trait.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::supervisor::{Stop, Supervisor};

/// The instances of a target, by index (0 to `len() - 1`, fixed for the run).
#[async_trait]
pub trait Instances: Send + Sync {
    async fn count(&self) -> usize;

    /// How the record names instance `index` (`instance 1`, `container aimate-aimate-2`).
    fn describe(&self, index: usize) -> String;

    /// Takes instance `index` down; a lease with the keeper brings it back by `until`
    /// should the controller die first.
    async fn kill(&self, index: usize, how: Stop, until: SystemTime) -> Result<(), String>;

    /// Brings instance `index` back after a kill (unless its platform already did) and
    /// waits until it is ready; returns the time that took.
    async fn bring_back(&self, index: usize) -> Result<Duration, String>;

    /// Freezes instance `index`: alive, accepting, answering nothing. The keeper thaws
    /// it by `until` at the latest.
    async fn freeze(&self, index: usize, until: SystemTime) -> Result<(), String>;

    async fn thaw(&self, index: usize) -> Result<(), String>;

    /// The `restart-instances` rollback: every instance thawed and running again.
    async fn restore(&self) -> Vec<String>;

    /// Each instance's own address, where one can be reached from here.
    async fn addrs(&self) -> Vec<SocketAddr>;

    /// Gives back what the run started (its own processes stop; a deployment's
    /// containers are left running). Returns what did not stop cleanly.
    async fn shutdown(&self) -> Vec<String>;
}

/// The instances a drill started itself, under its [`Supervisor`].
pub struct OwnInstances(pub tokio::sync::Mutex<Supervisor>);

/// Restarts of an own instance before the step fails.
const RESTART_ATTEMPTS: u32 = 5;

#[async_trait]
impl Instances for OwnInstances {
    async fn count(&self) -> usize {
        self.0.lock().await.len()
    }

    fn describe(&self, index: usize) -> String {
        format!("instance {index}")
    }

    async fn kill(&self, index: usize, how: Stop, _until: SystemTime) -> Result<(), String> {
        // The supervisor's own lease (kill the process if the controller dies) covers
        // a stopped instance: nothing runs that needs undoing.
        let mut supervisor = self.0.lock().await;
        supervisor.stop(index, how).await.map_err(|e| e.to_string())
    }

    async fn bring_back(&self, index: usize) -> Result<Duration, String> {
        let mut supervisor = self.0.lock().await;
        supervisor
            .restart(index, RESTART_ATTEMPTS)
            .await
            .map_err(|e| e.to_string())
    }

    async fn freeze(&self, index: usize, until: SystemTime) -> Result<(), String> {
        let mut supervisor = self.0.lock().await;
        supervisor.freeze(index, until).map_err(|e| e.to_string())
    }

    async fn thaw(&self, index: usize) -> Result<(), String> {
        self.0.lock().await.thaw(index).map_err(|e| e.to_string())
    }

    async fn restore(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let mut supervisor = self.0.lock().await;
        for index in 0..supervisor.len() {
            let _ = supervisor.thaw(index);
            if !supervisor.is_running(index)
                && let Err(error) = supervisor.restart(index, RESTART_ATTEMPTS).await
            {
                failures.push(error.to_string());
            }
        }
        failures
    }

    async fn addrs(&self) -> Vec<SocketAddr> {
        self.0.lock().await.addrs()
    }

    async fn shutdown(&self) -> Vec<String> {
        self.0.lock().await.shutdown().await
    }
}
