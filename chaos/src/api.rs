//! The control API, compatible with Toxiproxy's core so its clients and habits work:
//!
//! ```text
//! GET  /version                         POST /reset   (enable all, remove all toxics)
//! GET  /proxies                         POST /proxies {name, listen, upstream, enabled}
//! GET|POST|DELETE /proxies/{proxy}
//! GET|POST        /proxies/{proxy}/toxics
//! GET|POST|DELETE /proxies/{proxy}/toxics/{toxic}
//! ```
//!
//! Errors are Toxiproxy's `{"error": "…", "status": N}`.
//!
//! Who may call (a web page the operator visits must not be able to point a proxy at
//! anything): a request must be addressed to the API itself (its `Host` names the bound
//! address, `localhost` on loopback, or an IP literal on a wildcard bind, so DNS
//! rebinding cannot reach it), must not come from a page of another origin (`Origin`),
//! a body must be declared `application/json`, and when a token is configured every
//! call but `GET /version` (a health check's) needs `Authorization: Bearer <token>`
//! (compared in constant time). Off loopback a token is mandatory.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use crate::proxy::{Proxy, ProxyError};
use crate::toxic::{Stream, Toxic, ToxicKind};

#[derive(Clone)]
pub struct ApiState {
    proxies: Arc<Mutex<BTreeMap<String, Proxy>>>,
    token: Option<Arc<str>>,
    /// Where the API listens: requests must be addressed to it.
    bound: SocketAddr,
}

impl ApiState {
    /// `token`: `None` or empty means no token is asked for.
    pub fn new(token: Option<String>, bound: SocketAddr) -> Self {
        Self {
            proxies: Arc::new(Mutex::new(BTreeMap::new())),
            token: token.filter(|t| !t.trim().is_empty()).map(Into::into),
            bound,
        }
    }

    /// Whether a `Host` header value addresses this API.
    fn host_allowed(&self, host: &str) -> bool {
        let (name, port) = match host.rsplit_once(':') {
            // `[::1]:8474` or `127.0.0.1:8474`; a bare IPv6 literal has no port here.
            Some((name, port)) if !name.ends_with(':') && port.parse::<u16>().is_ok() => {
                (name, port.parse::<u16>().unwrap_or(0))
            }
            _ => (host, 80),
        };
        if port != self.bound.port() {
            return false;
        }
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let ip = name.parse::<IpAddr>().ok();
        let bound_ip = self.bound.ip();
        if bound_ip.is_unspecified() {
            ip.is_some() || name.eq_ignore_ascii_case("localhost")
        } else {
            ip == Some(bound_ip)
                || (bound_ip.is_loopback() && name.eq_ignore_ascii_case("localhost"))
        }
    }
}

/// Compares a given secret with the expected one in time independent of where they
/// differ (the length may show; the token's bytes do not).
fn secrets_match(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0_u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn proxy_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "proxy not found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.message, "status": self.status.as_u16()})),
        )
            .into_response()
    }
}

/// Toxiproxy's statuses and words, which its clients match on.
impl From<ProxyError> for ApiError {
    fn from(error: ProxyError) -> Self {
        match error {
            ProxyError::ToxicExists(_) => Self::new(StatusCode::CONFLICT, "toxic already exists"),
            ProxyError::ToxicNotFound(_) => Self::new(StatusCode::NOT_FOUND, "toxic not found"),
            ProxyError::InvalidToxic(_) => Self::new(StatusCode::BAD_REQUEST, error.to_string()),
            ProxyError::Listen { .. } => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A proxy as the API shows it.
#[derive(Serialize)]
struct ProxyView {
    name: String,
    listen: String,
    upstream: String,
    enabled: bool,
    toxics: Vec<Toxic>,
}

fn view(proxy: &Proxy) -> ProxyView {
    ProxyView {
        name: proxy.name.clone(),
        listen: proxy.listen_addr().to_string(),
        upstream: proxy.upstream.clone(),
        enabled: proxy.enabled(),
        toxics: proxy.toxics(),
    }
}

/// A proxy to create: a `POST /proxies` body, or an entry of a `--config` file.
#[derive(Debug, Deserialize)]
pub struct NewProxy {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Deserialize)]
struct ProxyUpdate {
    listen: Option<String>,
    upstream: Option<String>,
    enabled: Option<bool>,
}

/// A toxic as clients send it: the name is optional (Toxiproxy defaults it).
#[derive(Deserialize)]
struct NewToxic {
    name: Option<String>,
    #[serde(flatten)]
    kind: ToxicKind,
    #[serde(default)]
    stream: Stream,
    #[serde(default = "full")]
    toxicity: f32,
}

#[derive(Deserialize)]
struct ToxicUpdate {
    attributes: Option<serde_json::Value>,
    toxicity: Option<f32>,
}

fn yes() -> bool {
    true
}

fn full() -> f32 {
    1.0
}

/// Reads a JSON body (its `Content-Type` was checked by [`guard`]).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(bad_json)
}

fn bad_json(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("bad request body: {error}"),
    )
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/proxies", get(list_proxies).post(create_proxy))
        .route("/populate", post(populate))
        .route("/metrics", get(metrics))
        .route(
            "/proxies/{proxy}",
            get(get_proxy).post(update_proxy).delete(delete_proxy),
        )
        .route(
            "/proxies/{proxy}/toxics",
            get(list_toxics).post(create_toxic),
        )
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(get_toxic).post(update_toxic).delete(delete_toxic),
        )
        .layer(from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    let host = text(header::HOST).unwrap_or_default();
    if !state.host_allowed(host) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "requests must be addressed to the control API ({}), not `{host}`",
                state.bound
            ),
        )
        .into_response();
    }
    if let Some(origin) = text(header::ORIGIN)
        && origin != format!("http://{host}")
    {
        return ApiError::new(StatusCode::FORBIDDEN, "cross-origin requests are refused")
            .into_response();
    }
    // `GET /version` tells nothing but the version: a health check needs no secret.
    let version_only =
        request.method() == axum::http::Method::GET && request.uri().path() == "/version";
    if let Some(token) = state.token.as_ref().filter(|_| !version_only) {
        let given = text(header::AUTHORIZATION)
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !secrets_match(given.as_bytes(), token.as_bytes()) {
            return ApiError::new(StatusCode::UNAUTHORIZED, "a valid bearer token is required")
                .into_response();
        }
    }
    let has_body = text(header::CONTENT_LENGTH).is_some_and(|length| length != "0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    let json = text(header::CONTENT_TYPE).is_some_and(|content_type| {
        content_type
            .split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
    });
    if has_body && !json {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body must be sent as `Content-Type: application/json`",
        )
        .into_response();
    }
    next.run(request).await
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({"version": concat!("aimate-chaos ", env!("CARGO_PKG_VERSION"))}))
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let text = crate::proxy_metrics::render(state.proxies.lock().await.values());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn reset(State(state): State<ApiState>) -> StatusCode {
    for proxy in state.proxies.lock().await.values() {
        proxy.clear_toxics();
        proxy.set_enabled(true);
    }
    StatusCode::NO_CONTENT
}

async fn list_proxies(State(state): State<ApiState>) -> Json<BTreeMap<String, ProxyView>> {
    Json(
        state
            .proxies
            .lock()
            .await
            .iter()
            .map(|(name, proxy)| (name.clone(), view(proxy)))
            .collect(),
    )
}

async fn create_proxy(
    State(state): State<ApiState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ProxyView>)> {
    let new = parse::<NewProxy>(&body)?;
    if new.name.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing required field: name",
        ));
    }
    let mut proxies = state.proxies.lock().await;
    if proxies.contains_key(&new.name) {
        return Err(ApiError::new(StatusCode::CONFLICT, "proxy already exists"));
    }
    let proxy = Proxy::start(&new.name, &new.listen, &new.upstream).await?;
    proxy.set_enabled(new.enabled);
    let shown = view(&proxy);
    proxies.insert(new.name, proxy);
    Ok((StatusCode::CREATED, Json(shown)))
}

/// A proxy of a `POST /populate` body: `enabled` defaults to true.
#[derive(Deserialize)]
struct PopulateProxy {
    #[serde(default)]
    name: String,
    #[serde(default)]
    listen: String,
    #[serde(default)]
    upstream: String,
    enabled: Option<bool>,
}

/// `POST /populate`: creates or replaces every listed proxy in one call, as client
/// libraries do at start-up. As Toxiproxy: the whole list is checked first (a missing
/// name or upstream is 400 and changes nothing); a listed proxy that exists with the
/// same listen address and upstream is kept as it is (toxics, enabled and all), one that
/// differs is replaced; proxies not listed are left alone. 201 with the listed proxies; on a
/// failure part-way, its status with the error and the proxies done so far.
async fn populate(State(state): State<ApiState>, body: Bytes) -> Response {
    let listed = match parse::<Vec<PopulateProxy>>(&body) {
        Ok(listed) => listed,
        Err(error) => return error.into_response(),
    };
    for (i, proxy) in listed.iter().enumerate() {
        for (field, value) in [("name", &proxy.name), ("upstream", &proxy.upstream)] {
            if value.trim().is_empty() {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("missing required field: {field} at proxy {}", i + 1),
                )
                .into_response();
            }
        }
    }
    let mut proxies = state.proxies.lock().await;
    let mut done = Vec::new();
    for wanted in listed {
        // Toxiproxy compares the resolved listen address.
        let same = proxies.get(&wanted.name).is_some_and(|p| {
            p.upstream == wanted.upstream
                && wanted.listen.parse::<std::net::SocketAddr>().ok() == Some(p.listen_addr())
        });
        if !same {
            if let Some(old) = proxies.remove(&wanted.name) {
                old.stop().await;
            }
            match Proxy::start(&wanted.name, &wanted.listen, &wanted.upstream).await {
                Ok(proxy) => {
                    proxy.set_enabled(wanted.enabled.unwrap_or(true));
                    proxies.insert(wanted.name.clone(), proxy);
                }
                Err(error) => {
                    let error = ApiError::from(error);
                    let status = error.status;
                    return (
                        status,
                        Json(json!({
                            "error": error.message,
                            "status": status.as_u16(),
                            "proxies": done,
                        })),
                    )
                        .into_response();
                }
            }
        }
        if let Some(proxy) = proxies.get(&wanted.name) {
            done.push(view(proxy));
        }
    }
    (StatusCode::CREATED, Json(json!({ "proxies": done }))).into_response()
}

async fn get_proxy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ProxyView>> {
    let proxies = state.proxies.lock().await;
    proxies
        .get(&name)
        .map(|p| Json(view(p)))
        .ok_or_else(ApiError::proxy_not_found)
}

async fn update_proxy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ProxyView>> {
    let update = parse::<ProxyUpdate>(&body)?;
    let mut proxies = state.proxies.lock().await;
    let proxy = proxies.get(&name).ok_or_else(ApiError::proxy_not_found)?;
    let moved = update
        .listen
        .as_ref()
        .is_some_and(|l| *l != proxy.listen_addr().to_string())
        || update
            .upstream
            .as_ref()
            .is_some_and(|u| *u != proxy.upstream);
    if moved {
        // A new address means a new listener. The old one must let go of its port first
        // (the listen address may stay the same); if the new one cannot start, the old
        // one comes back as it was, toxics and all.
        let listen = update
            .listen
            .clone()
            .unwrap_or_else(|| proxy.listen_addr().to_string());
        let upstream = update
            .upstream
            .clone()
            .unwrap_or_else(|| proxy.upstream.clone());
        let (old_listen, old_upstream) = (proxy.listen_addr().to_string(), proxy.upstream.clone());
        let (toxics, enabled) = (proxy.toxics(), proxy.enabled());
        if let Some(old) = proxies.remove(&name) {
            old.stop().await;
        }
        let replacement = match Proxy::start(&name, &listen, &upstream).await {
            Ok(replacement) => replacement,
            Err(error) => {
                let restored = Proxy::start(&name, &old_listen, &old_upstream).await?;
                for toxic in toxics {
                    restored.add_toxic(toxic)?;
                }
                restored.set_enabled(enabled);
                proxies.insert(name, restored);
                return Err(error.into());
            }
        };
        for toxic in toxics {
            replacement.add_toxic(toxic)?;
        }
        replacement.set_enabled(enabled);
        proxies.insert(name.clone(), replacement);
    }
    let proxy = proxies.get(&name).ok_or_else(ApiError::proxy_not_found)?;
    if let Some(enabled) = update.enabled {
        proxy.set_enabled(enabled);
    }
    Ok(Json(view(proxy)))
}

async fn delete_proxy(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .proxies
        .lock()
        .await
        .remove(&name)
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(ApiError::proxy_not_found)
}

async fn list_toxics(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<Toxic>>> {
    let proxies = state.proxies.lock().await;
    Ok(Json(
        proxies
            .get(&name)
            .ok_or_else(ApiError::proxy_not_found)?
            .toxics(),
    ))
}

async fn create_toxic(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Toxic>> {
    let new = parse::<NewToxic>(&body)?;
    let proxies = state.proxies.lock().await;
    let proxy = proxies.get(&name).ok_or_else(ApiError::proxy_not_found)?;
    let toxic = Toxic {
        name: new.name.unwrap_or_default(),
        kind: new.kind,
        stream: new.stream,
        toxicity: new.toxicity,
    }
    .normalized();
    let toxic = Toxic {
        name: if toxic.name.is_empty() {
            Toxic::default_name(&toxic.kind, toxic.stream)
        } else {
            toxic.name.clone()
        },
        ..toxic
    };
    proxy.add_toxic(toxic.clone())?;
    Ok(Json(toxic))
}

async fn get_toxic(
    State(state): State<ApiState>,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult<Json<Toxic>> {
    let proxies = state.proxies.lock().await;
    let proxy = proxies.get(&name).ok_or_else(ApiError::proxy_not_found)?;
    proxy
        .toxics()
        .into_iter()
        .find(|t| t.name == toxic)
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "toxic not found"))
}

async fn update_toxic(
    State(state): State<ApiState>,
    Path((name, toxic_name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Toxic>> {
    let update = parse::<ToxicUpdate>(&body)?;
    let proxies = state.proxies.lock().await;
    let proxy = proxies.get(&name).ok_or_else(ApiError::proxy_not_found)?;
    let mut toxic = proxy
        .toxics()
        .into_iter()
        .find(|t| t.name == toxic_name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "toxic not found"))?;
    if let Some(attributes) = update.attributes {
        // Merge the given attributes over the current ones, then re-read the kind.
        let mut current = serde_json::to_value(&toxic.kind).map_err(bad_json)?;
        if let (Some(current), Some(given)) = (
            current["attributes"].as_object_mut(),
            attributes.as_object(),
        ) {
            for (key, value) in given {
                current.insert(key.clone(), value.clone());
            }
        }
        toxic.kind = serde_json::from_value(current).map_err(bad_json)?;
    }
    if let Some(toxicity) = update.toxicity {
        toxic.toxicity = toxicity;
    }
    proxy.replace_toxic(toxic.clone())?;
    Ok(Json(toxic))
}

async fn delete_toxic(
    State(state): State<ApiState>,
    Path((name, toxic)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let proxies = state.proxies.lock().await;
    proxies
        .get(&name)
        .ok_or_else(ApiError::proxy_not_found)?
        .remove_toxic(&toxic)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the control API on a non-loopback address ({0}) needs a token (--token / AIMATE_CHAOS_TOKEN)"
    )]
    ExposedWithoutToken(std::net::SocketAddr),
    #[error("{path}: {message}")]
    Config {
        path: std::path::PathBuf,
        message: String,
    },
}

/// The proxies to create at start-up, as Toxiproxy's `-config` file lists them: a JSON
/// array of `{name, listen, upstream, enabled}`. Read and checked before anything
/// listens, so a bad file is one line and exit 2.
pub fn read_config(path: &std::path::Path) -> Result<Vec<NewProxy>, ServeError> {
    let config_error = |message: String| ServeError::Config {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| config_error(e.to_string()))?;
    let proxies: Vec<NewProxy> =
        serde_json::from_str(&text).map_err(|e| config_error(e.to_string()))?;
    for (i, proxy) in proxies.iter().enumerate() {
        for (field, value) in [
            ("name", &proxy.name),
            ("listen", &proxy.listen),
            ("upstream", &proxy.upstream),
        ] {
            if value.trim().is_empty() {
                return Err(config_error(format!("proxy {} has no {field}", i + 1)));
            }
        }
    }
    Ok(proxies)
}

/// Serves the control API on `addr` until `shutdown` resolves. Proxies live as long as
/// the API does: stopping it removes every fault.
pub async fn serve(
    addr: std::net::SocketAddr,
    token: Option<String>,
    initial: Vec<NewProxy>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), ServeError> {
    let token = token.filter(|t| !t.trim().is_empty());
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(ServeError::ExposedWithoutToken(addr));
    }
    let mut proxies = BTreeMap::new();
    for new in initial {
        let proxy = Proxy::start(&new.name, &new.listen, &new.upstream)
            .await
            .map_err(|e| ServeError::Config {
                path: format!("proxy {}", new.name).into(),
                message: e.to_string(),
            })?;
        proxy.set_enabled(new.enabled);
        proxies.insert(new.name, proxy);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    on_listening(bound);
    let state = ApiState::new(token, bound);
    *state.proxies.lock().await = proxies;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}
