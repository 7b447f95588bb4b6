//! Talking to the target outside the load itself: checking it is the AI Mate API,
//! getting an API key, seeding realistic data, scraping metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} does not look like the AI Mate API ({reason})")]
    NotAimate { url: String, reason: String },
    #[error("the API key was refused (401); check --api-key")]
    BadApiKey,
    #[error("the admin token was refused ({0}); check --admin-token / AIMATE_ADMIN_TOKEN")]
    BadAdminToken(u16),
    #[error("{what} failed: HTTP {status}: {body}")]
    Unexpected {
        what: &'static str,
        status: u16,
        body: String,
    },
}

/// Invoices of a tenant the run reads one by one (`GET /api/invoices/{id}`): the ids of
/// its first page after seeding.
pub const READ_IDS: u64 = 200;

/// The longest single wait a target's `Retry-After` gets, whatever it says.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The longest the client waits in all for one request the target keeps refusing.
const MAX_POLITE_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    /// Whether the user was told the target asked us to wait (said once per run).
    told_to_wait: Arc<AtomicBool>,
}

/// The wait a 429 or 503 asks for: its `Retry-After` in seconds (1 s when absent or an
/// HTTP date), at most [`MAX_RETRY_AFTER`].
fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
        .clamp(Duration::from_millis(100), MAX_RETRY_AFTER)
}

fn unreachable(url: &str, error: &reqwest::Error) -> ApiError {
    ApiError::Unreachable {
        url: url.to_owned(),
        reason: error.to_string(),
    }
}

impl Api {
    pub fn new(base: &str) -> Result<Self, ApiError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| unreachable(base, &e))?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            told_to_wait: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Sends `request` as a polite client: a 429 or 503 is waited out as its
    /// `Retry-After` says (bounded, [`MAX_POLITE_WAIT`] in all) and the request sent again,
    /// so seeding and the write read-back never fail a run for the target's own limit.
    async fn send_politely(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        let mut waited = Duration::ZERO;
        loop {
            // A JSON or empty body replays; anything else would be sent once.
            let Some(attempt) = request.try_clone() else {
                return request
                    .send()
                    .await
                    .map_err(|e| unreachable(&self.base, &e));
            };
            let response = attempt
                .send()
                .await
                .map_err(|e| unreachable(&self.base, &e))?;
            let status = response.status().as_u16();
            let wait = retry_after(&response);
            if !matches!(status, 429 | 503) || waited + wait > MAX_POLITE_WAIT {
                return Ok(response);
            }
            if !self.told_to_wait.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "aimate load: {what}: the target answered {status} with Retry-After {} s; \
                     waiting as it asks (up to {} s per request)",
                    wait.as_secs_f64(),
                    MAX_POLITE_WAIT.as_secs()
                );
            }
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Value), ApiError> {
        let response = self.send_politely(what, request).await?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 500 {
            return Err(ApiError::Unexpected {
                what,
                status,
                body: body.to_string(),
            });
        }
        Ok((status, body))
    }

    /// `GET path` with the tenant's key: the status and JSON body, whatever the status.
    pub async fn get(&self, api_key: &str, path: &str) -> Result<(u16, Value), ApiError> {
        let request = self.client.get(self.url(path)).bearer_auth(api_key);
        let response = self.send_politely("reading back writes", request).await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Fails unless `/api/health` answers with the server's readiness document and the
    /// metrics page has its metric names.
    pub async fn probe(&self) -> Result<(), ApiError> {
        let not_aimate = |reason: &str| ApiError::NotAimate {
            url: self.base.clone(),
            reason: reason.to_owned(),
        };
        let response = self
            .client
            .get(self.url("/api/health"))
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        let body: Value = response
            .json()
            .await
            .map_err(|_| not_aimate("/api/health is not JSON"))?;
        if body.get("database").is_none() || body.get("status").is_none() {
            return Err(not_aimate("/api/health has no database status"));
        }
        let metrics = self.metrics_text().await?;
        if !crate::scrape::looks_like_aimate(&metrics) {
            return Err(not_aimate("/api/metrics lacks the server's metric names"));
        }
        Ok(())
    }

    pub async fn metrics_text(&self) -> Result<String, ApiError> {
        let response = self
            .client
            .get(self.url("/api/metrics"))
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        response
            .text()
            .await
            .map_err(|e| unreachable(&self.base, &e))
    }

    /// `GET url` (any host: an instance's metrics page, a Prometheus API): the body of a
    /// 2xx answer.
    pub async fn fetch_text(&self, url: &str) -> Result<String, ApiError> {
        let failed = |e: &reqwest::Error| unreachable(&aimate_reports::redact::redact_url(url), e);
        let response = self
            .client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(&e))?;
        response.text().await.map_err(|e| failed(&e))
    }

    /// Creates a tenant through the admin endpoint and returns its API key.
    pub async fn create_tenant(&self, admin_token: &str, name: &str) -> Result<String, ApiError> {
        let request = self
            .client
            .post(self.url("/api/admin/tenants"))
            .bearer_auth(admin_token)
            .json(&json!({"name": name}));
        match self.send("creating a tenant", request).await? {
            (201, body) => {
                body["api_key"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or(ApiError::Unexpected {
                        what: "creating a tenant",
                        status: 201,
                        body: body.to_string(),
                    })
            }
            (status @ (401 | 403), _) => Err(ApiError::BadAdminToken(status)),
            (status, body) => Err(ApiError::Unexpected {
                what: "creating a tenant",
                status,
                body: body.to_string(),
            }),
        }
    }

    /// Fails with [`ApiError::BadApiKey`] unless the key is accepted.
    pub async fn check_key(&self, api_key: &str) -> Result<Value, ApiError> {
        match self
            .send(
                "reading the dashboard",
                self.client
                    .get(self.url("/api/dashboard"))
                    .bearer_auth(api_key),
            )
            .await?
        {
            (200, body) => Ok(body),
            (401, _) => Err(ApiError::BadApiKey),
            (status, body) => Err(ApiError::Unexpected {
                what: "reading the dashboard",
                status,
                body: body.to_string(),
            }),
        }
    }

    /// What the target advertises of its per-key rate limit on an ordinary answer to
    /// this key (`None`: no limit advertised).
    pub async fn advertised_limit(
        &self,
        api_key: &str,
    ) -> Result<Option<crate::target_limit::AdvertisedLimit>, ApiError> {
        let request = self
            .client
            .get(self.url("/api/dashboard"))
            .bearer_auth(api_key);
        let response = self
            .send_politely("reading the rate limit", request)
            .await?;
        Ok(crate::target_limit::AdvertisedLimit::from_headers(
            response.headers(),
        ))
    }

    /// The tenant's invoices and jobs, from its dashboard (which every write keeps exact).
    pub async fn seeded(&self, api_key: &str) -> Result<(u64, u64), ApiError> {
        let dashboard = self.check_key(api_key).await?;
        let count = |field: &str| -> u64 {
            dashboard[field]
                .as_object()
                .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
        };
        Ok((count("invoices_by_status"), count("jobs_by_status")))
    }

    /// Brings the tenant up to `invoices` invoices and `jobs` jobs (idempotent for one
    /// writer: counts what exists first).
    pub async fn seed(&self, api_key: &str, invoices: u64, jobs: u64) -> Result<(), ApiError> {
        let (has_invoices, has_jobs) = self.seeded(api_key).await?;
        let statuses = ["draft", "sent", "paid", "overdue"];
        let mut missing = invoices.saturating_sub(has_invoices);
        let mut n = 0u64;
        while missing > 0 {
            let batch = missing.min(1000);
            let items: Vec<Value> = (0..batch)
                .map(|i| {
                    n += 1;
                    json!({"customer": format!("Customer {}", (n + i) % 50), "amount_cents": 1000 + (n * 37) % 500_000,
                           "status": statuses[(n % 4) as usize]})
                })
                .collect();
            let request = self
                .client
                .post(self.url("/api/invoices/bulk"))
                .bearer_auth(api_key)
                .json(&json!({"invoices": items}));
            match self.send("seeding invoices", request).await? {
                (201, _) => missing -= batch,
                (status, body) => {
                    return Err(ApiError::Unexpected {
                        what: "seeding invoices",
                        status,
                        body: body.to_string(),
                    });
                }
            }
        }
        for i in has_jobs..jobs {
            let body = json!({"customer": format!("Customer {}", i % 50), "title": "Seeded job",
                              "scheduled_on": format!("2026-12-{:02}", 1 + i % 28)});
            let request = self
                .client
                .post(self.url("/api/jobs"))
                .bearer_auth(api_key)
                .json(&body);
            if let (status, body) = self.send("seeding jobs", request).await?
                && status != 201
            {
                return Err(ApiError::Unexpected {
                    what: "seeding jobs",
                    status,
                    body: body.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Up to `limit` (at most [`READ_IDS`]) of the tenant's invoice ids, to read during
    /// the run.
    pub async fn invoice_ids(&self, api_key: &str, limit: usize) -> Result<Vec<i64>, ApiError> {
        let limit = limit.min(READ_IDS as usize);
        let request = self
            .client
            .get(self.url(&format!("/api/invoices?limit={limit}")))
            .bearer_auth(api_key);
        let (_, page) = self.send("listing invoices", request).await?;
        Ok(page["items"].as_array().map_or_else(Vec::new, |items| {
            items.iter().filter_map(|i| i["id"].as_i64()).collect()
        }))
    }
}
