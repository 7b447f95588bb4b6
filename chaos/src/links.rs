//! Fault proxies an experiment puts toxics on: one of this process ([`Proxy`]) or one a
//! deployment runs ([`RemoteProxy`]: a proxy on a Toxiproxy-compatible control API,
//! Toxiproxy itself or `aimate chaos proxy`). A remote toxic is leased with the keeper, so
//! a controller that dies mid-fault does not leave it behind.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::keeper::{Grant, Keeper, Revert};
use crate::proxy::Proxy;
use crate::toxic::Toxic;

#[async_trait]
pub trait FaultLink: Send + Sync {
    /// Adds `toxic`; the keeper removes it by `until` should the controller die.
    async fn add_toxic(&self, toxic: &Toxic, until: SystemTime) -> Result<(), String>;
    async fn remove_toxic(&self, name: &str) -> Result<(), String>;
    /// Cuts every connection and refuses new ones (`false`), or lets them through.
    async fn set_enabled(&self, enabled: bool, until: SystemTime) -> Result<(), String>;
    /// The `reset-toxics` rollback: no toxic, traffic through.
    async fn reset(&self) -> Result<(), String>;
}

/// A proxy of this process dies with it: no lease is needed.
#[async_trait]
impl FaultLink for Proxy {
    async fn add_toxic(&self, toxic: &Toxic, _until: SystemTime) -> Result<(), String> {
        Proxy::add_toxic(self, toxic.clone()).map_err(|e| e.to_string())
    }

    async fn remove_toxic(&self, name: &str) -> Result<(), String> {
        Proxy::remove_toxic(self, name).map_err(|e| e.to_string())
    }

    async fn set_enabled(&self, enabled: bool, _until: SystemTime) -> Result<(), String> {
        Proxy::set_enabled(self, enabled);
        Ok(())
    }

    async fn reset(&self) -> Result<(), String> {
        self.clear_toxics();
        Proxy::set_enabled(self, true);
        Ok(())
    }
}

/// Where a remote proxy is: its control API, its name there, the API's bearer token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteAddress {
    pub api: String,
    pub proxy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// How long one call to a control API may take.
const API_TIMEOUT: Duration = Duration::from_secs(5);

impl RemoteAddress {
    fn client() -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .timeout(API_TIMEOUT)
            // A loopback API must not be sent through a proxy from the environment.
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())
    }

    /// One call: `method path [json]`, any 2xx is success, 404 on a DELETE too (gone).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let url = format!(
            "{}/proxies/{}{path}",
            self.api.trim_end_matches('/'),
            self.proxy
        );
        let mut request = Self::client()?.request(method.clone(), &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status();
        if status.is_success() || (method == reqwest::Method::DELETE && status.as_u16() == 404) {
            return Ok(response.json().await.unwrap_or(serde_json::Value::Null));
        }
        let text = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        Err(format!("{method} {url}: {status}: {}", reason.trim()))
    }

    /// Undoes a fault from the keeper (outside any runtime of the caller's): a thread
    /// of its own with a runtime of its own.
    pub fn blocking(&self, method: reqwest::Method, path: String) -> std::io::Result<()> {
        let address = self.clone();
        let body = (method == reqwest::Method::POST).then(|| serde_json::json!({"enabled": true}));
        crate::docker::on_own_runtime(
            async move { address.call(method, &path, body).await.map(drop) },
        )
    }
}

pub struct RemoteProxy {
    pub address: RemoteAddress,
    keeper: Arc<Keeper>,
    leases: std::sync::Mutex<Vec<(String, Grant)>>,
}

/// The lease name of the proxy being disabled.
const DISABLED: &str = "\u{0}disabled";

impl RemoteProxy {
    /// Checks that the proxy exists on its API before anything is injected.
    pub async fn connect(address: RemoteAddress, keeper: Arc<Keeper>) -> Result<Self, String> {
        address
            .call(reqwest::Method::GET, "", None)
            .await
            .map_err(|e| format!("the proxy `{}` is not there: {e}", address.proxy))?;
        Ok(Self {
            address,
            keeper,
            leases: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn lease(&self, key: &str, revert: Revert, until: SystemTime) -> Result<(), String> {
        let grant = self
            .keeper
            .grant(revert, until)
            .map_err(|e| e.to_string())?;
        if let Ok(mut leases) = self.leases.lock() {
            leases.push((key.to_owned(), grant));
        }
        Ok(())
    }

    /// The controller undid `key` itself: the keeper forgets it.
    fn forget(&self, key: &str) {
        let grants: Vec<Grant> = match self.leases.lock() {
            Ok(mut leases) => {
                let (gone, kept) = leases.drain(..).partition(|(k, _)| k == key);
                *leases = kept;
                gone.into_iter().map(|(_, grant)| grant).collect()
            }
            Err(_) => Vec::new(),
        };
        for grant in grants {
            self.keeper.forget(grant);
        }
    }
}

#[async_trait]
impl FaultLink for RemoteProxy {
    async fn add_toxic(&self, toxic: &Toxic, until: SystemTime) -> Result<(), String> {
        let revert = Revert::RemoveToxic {
            at: self.address.clone(),
            toxic: toxic.name.clone(),
        };
        self.lease(&toxic.name, revert, until)?;
        let body = serde_json::to_value(toxic).map_err(|e| e.to_string())?;
        if let Err(error) = self
            .address
            .call(reqwest::Method::POST, "/toxics", Some(body))
            .await
        {
            self.forget(&toxic.name);
            return Err(error);
        }
        Ok(())
    }

    async fn remove_toxic(&self, name: &str) -> Result<(), String> {
        let path = format!("/toxics/{name}");
        let result = self
            .address
            .call(reqwest::Method::DELETE, &path, None)
            .await;
        if result.is_ok() {
            self.forget(name);
        }
        result.map(drop)
    }

    async fn set_enabled(&self, enabled: bool, until: SystemTime) -> Result<(), String> {
        if !enabled {
            let revert = Revert::EnableProxy {
                at: self.address.clone(),
            };
            self.lease(DISABLED, revert, until)?;
        }
        let body = serde_json::json!({ "enabled": enabled });
        let result = self
            .address
            .call(reqwest::Method::POST, "", Some(body))
            .await;
        if enabled == result.is_ok() {
            self.forget(DISABLED);
        }
        result.map(drop)
    }

    async fn reset(&self) -> Result<(), String> {
        // Only what this run injected and still holds: a deployment's standing toxics
        // are not ours to remove.
        let held: Vec<String> = match self.leases.lock() {
            Ok(leases) => leases.iter().map(|(key, _)| key.clone()).collect(),
            Err(_) => Vec::new(),
        };
        let until = SystemTime::now() + API_TIMEOUT;
        for key in held {
            if key == DISABLED {
                self.set_enabled(true, until).await?;
            } else {
                self.remove_toxic(&key).await?;
            }
        }
        Ok(())
    }
}
