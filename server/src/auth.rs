//! API keys and the tenant behind each request.
//!
//! A key is 32 random bytes (base64url, `amk_` prefix), shown once at creation; only its
//! SHA-256 is stored. A salted slow hash is unnecessary for 256-bit random secrets and
//! would cost every request. Lookups are cached for a minute so a hot key does not hit
//! the database per request.
//!
//! The middleware resolves the tenant, applies the rate limit, and sets the
//! `RateLimit-*` headers; handlers take [`Tenant`] as an extractor.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::BoxFuture;
use prometheus::IntCounter;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth_failures::AuthFailures;
use crate::connection::PeerAddr;
use crate::db::Db;
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::ratelimit::Decision;
use crate::state::AppState;

/// The authenticated tenant of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant {
    pub id: i64,
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Tenant>()
            .copied()
            .ok_or(AppError::Unauthorized(
                "this endpoint needs `Authorization: Bearer <api key>`",
            ))
    }
}

pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("amk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a secret, as stored in `tenant.api_key_hash` (lowercase hex).
pub fn hash_secret(secret: &str) -> String {
    to_hex(&Sha256::digest(secret.as_bytes()))
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

/// The bearer token of a request, if it has a well-formed one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_match(given: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Key-hash → tenant lookups, including misses (so a flood of bad keys is cheap too).
pub struct AuthCache {
    /// Keyed by the raw digest: no hex string is built on a cache hit.
    lookups: moka::future::Cache<[u8; 32], Option<Tenant>, foldhash::fast::RandomState>,
    metrics: Arc<Metrics>,
    /// `cache_requests_total{cache="auth"}`'s children, resolved once (every request
    /// counts one).
    hits: IntCounter,
    misses: IntCounter,
}

impl AuthCache {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let lookups = moka::future::Cache::builder()
            .max_capacity(100_000)
            // A deleted key keeps working for at most this long.
            .time_to_live(Duration::from_secs(60))
            .build_with_hasher(foldhash::fast::RandomState::default());
        let counter = |result| metrics.cache_requests.with_label_values(&["auth", result]);
        Self {
            lookups,
            hits: counter("hit"),
            misses: counter("miss"),
            metrics,
        }
    }

    /// The tenant of `api_key`. A key not in the cache is looked up in the database,
    /// unless `peer` made too many failed attempts lately (`failures`): then 429.
    async fn tenant_for(
        &self,
        db: &Db,
        api_key: &str,
        failures: Option<(&AuthFailures, IpAddr)>,
    ) -> Result<Option<Tenant>, AppError> {
        let digest: [u8; 32] = Sha256::digest(api_key.as_bytes()).into();
        let (tenant, hit) = match self.lookups.get(&digest).await {
            Some(tenant) => (tenant, true),
            None => {
                if let Some(wait) = failures.and_then(|(f, peer)| f.blocked(peer)) {
                    self.metrics.rate_limited.inc();
                    return Err(AppError::RateLimited {
                        retry_after_secs: ceil_secs(wait),
                    });
                }
                let entry = self
                    .lookups
                    .entry(digest)
                    .or_try_insert_with(async {
                        let id: Option<i64> = sqlx::query_scalar(
                            "SELECT tenant_id FROM tenant \
                             WHERE api_key_hash = $1 AND key_revoked_at IS NULL",
                        )
                        .bind(to_hex(&digest))
                        .fetch_optional(&db.pool)
                        .await?;
                        Ok::<_, AppError>(id.map(|id| Tenant { id }))
                    })
                    .await
                    .map_err(|shared| (*shared).clone())?;
                let hit = !entry.is_fresh();
                (entry.into_value(), hit)
            }
        };
        if hit { &self.hits } else { &self.misses }.inc();
        if tenant.is_none()
            && let Some((failures, peer)) = failures
        {
            failures.failed(peer);
        }
        Ok(tenant)
    }
}

impl AuthCache {
    /// Forgets what this instance knows about the key with this stored hash (hex), so
    /// a rotated or revoked key stops working here at once; other instances forget it
    /// within the cache's TTL.
    pub async fn forget(&self, api_key_hash: &str) {
        let digest: Option<Vec<u8>> = (0..api_key_hash.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(api_key_hash.get(i..i + 2)?, 16).ok())
            .collect();
        if let Some(digest) = digest.and_then(|d| <[u8; 32]>::try_from(d).ok()) {
            self.lookups.invalidate(&digest).await;
        }
    }
}

/// The layer of tenant routes: authenticate, rate-limit, annotate the response. A plain
/// tower service: axum's `from_fn` clones and boxes the rest of the stack into a `Next`
/// for every request, which showed in the cached read path's profile.
#[derive(Clone)]
pub struct RequireTenantLayer {
    state: AppState,
}

impl RequireTenantLayer {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> tower::Layer<S> for RequireTenantLayer {
    type Service = RequireTenant<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTenant {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequireTenant<S> {
    inner: S,
    state: AppState,
}

impl<S> tower::Service<Request> for RequireTenant<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Take the service that was polled ready, leave a fresh clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move { Ok(require_tenant(state, request, inner).await) })
    }
}

async fn require_tenant<S>(state: AppState, mut request: Request, mut inner: S) -> Response
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    let Some(api_key) = bearer_token(request.headers()) else {
        return AppError::Unauthorized("missing `Authorization: Bearer <api key>` header")
            .into_response();
    };
    let peer = request
        .extensions()
        .get::<PeerAddr>()
        .map(|peer| peer.0.ip());
    let failures = state.auth_failures.as_ref().zip(peer);
    let tenant = match state.auth.tenant_for(&state.db, api_key, failures).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return AppError::Unauthorized("the API key is not valid").into_response(),
        Err(error) => return error.into_response(),
    };
    let decision = match &state.limiter {
        Some(limiter) => Some(limiter.check(tenant.id).await),
        None => None,
    };
    let mut response = match decision {
        Some(decision) if !decision.allowed => {
            state.metrics.rate_limited.inc();
            AppError::RateLimited {
                retry_after_secs: ceil_secs(decision.reset_after),
            }
            .into_response()
        }
        _ => {
            request.extensions_mut().insert(tenant);
            match inner.call(request).await {
                Ok(response) => response,
            }
        }
    };
    if let Some(decision) = decision {
        set_rate_limit_headers(response.headers_mut(), &decision);
        if let Some(policy) = &state.rate_limit_policy {
            response
                .headers_mut()
                .insert(RATELIMIT_POLICY, policy.clone());
        }
    }
    response
}

fn ceil_secs(duration: Duration) -> u64 {
    duration
        .as_millis()
        .div_ceil(1000)
        .max(1)
        .try_into()
        .unwrap_or(u64::MAX)
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

fn set_rate_limit_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    let reset = if decision.reset_after.is_zero() {
        0
    } else {
        ceil_secs(decision.reset_after)
    };
    headers.insert(RATELIMIT_RESET, HeaderValue::from(reset));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_stably() {
        let (a, b) = (generate_api_key(), generate_api_key());
        assert_ne!(a, b);
        assert!(a.starts_with("amk_") && a.len() == 4 + 43);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_eq!(hash_secret("abc").len(), 64);
    }

    #[test]
    fn bearer_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  amk_x "),
        );
        assert_eq!(bearer_token(&headers), Some("amk_x"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_match("token", "token"));
        assert!(!secrets_match("token", "tokem"));
        assert!(!secrets_match("", "token"));
    }
}
