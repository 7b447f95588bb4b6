//! The users' HTTP client: hyper-util's pooled HTTP/1.1 client, shared by every user of
//! a stage. reqwest (goose's client) runs each request through layers this generator
//! does not need and pays for them on every request: its redirect layer formats and
//! re-parses the URL, the decompression layer wraps every body. At 10k req/s on a
//! machine shared with the server under test, that CPU is taken from the server.

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What became of one request.
pub enum Sent {
    /// The response's status (its headers arrived) and, read to its end, its body.
    Response {
        status: u16,
        body: Option<Bytes>,
    },
    Timeout,
    ConnectError,
    OtherError,
}

/// A shared client for one target (`http://host:port`, no path).
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    origin: String,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an http:// origin the generator can send to")]
pub struct BadTarget(String);

impl Sender {
    pub fn new(target: &str, timeout: Duration) -> Result<Self, BadTarget> {
        let origin = target.trim_end_matches('/').to_owned();
        // Checked once here, so every request URI below is `origin` + a path we built.
        let uri: Uri = origin.parse().map_err(|_| BadTarget(origin.clone()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(BadTarget(origin));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            origin,
            timeout,
        })
    }

    /// Sends one request as the tenant of `authorization`; `json` is sent as the body.
    /// Returns when the response's
    /// headers arrived (`Instant` taken by the caller around it) and its body was read.
    /// `keep_body` keeps the body (for write acknowledgements); otherwise it is drained.
    pub async fn send(
        &self,
        authorization: &HeaderValue,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
        keep_body: bool,
    ) -> (Sent, std::time::Instant) {
        let uri = match format!("{}{path}", self.origin).parse::<Uri>() {
            Ok(uri) => uri,
            Err(_) => return (Sent::OtherError, std::time::Instant::now()),
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, authorization.clone())
            .header(USER_AGENT, HeaderValue::from_static("aimate-loadgen"));
        let body = match json {
            Some(json) => {
                builder =
                    builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Full::new(Bytes::from(json))
            }
            None => Full::new(Bytes::new()),
        };
        let Ok(request) = builder.body(body) else {
            return (Sent::OtherError, std::time::Instant::now());
        };
        let exchange = async {
            let response = self.client.request(request).await;
            // Latency is to the response's headers (time to first byte), as goose measures.
            let headers_at = std::time::Instant::now();
            let response = match response {
                Ok(response) => response,
                Err(error) if error.is_connect() => return (Sent::ConnectError, headers_at),
                Err(_) => return (Sent::OtherError, headers_at),
            };
            let status = response.status().as_u16();
            // Read to the end, so the connection goes back to the pool.
            let body = match response.into_body().collect().await {
                Ok(collected) => keep_body.then(|| collected.to_bytes()),
                Err(_) => return (Sent::OtherError, headers_at),
            };
            (Sent::Response { status, body }, headers_at)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => (Sent::Timeout, std::time::Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HeaderValue {
        HeaderValue::from_static("Bearer k")
    }

    #[test]
    fn only_plain_http_origins() {
        for bad in ["https://example.com", "example.com", "http://", "ftp://h"] {
            assert!(Sender::new(bad, Duration::from_secs(1)).is_err(), "{bad}");
        }
        assert!(Sender::new("http://127.0.0.1:8080/", Duration::from_secs(1)).is_ok());
    }

    #[tokio::test]
    async fn failures_are_told_apart() {
        // Nothing listens: a connect error.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let sender =
            Sender::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).unwrap();
        let (sent, _) = sender.send(&key(), Method::GET, "/x", None, false).await;
        assert!(matches!(sent, Sent::ConnectError));

        // Accepts, never answers: a timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let keep = tokio::spawn(async move {
            let (socket, _) = silent.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let sender = Sender::new(&format!("http://{addr}"), Duration::from_millis(200)).unwrap();
        let (sent, _) = sender
            .send(&key(), Method::POST, "/x", Some(b"{}".to_vec()), true)
            .await;
        assert!(matches!(sent, Sent::Timeout));
        keep.abort();
    }
}
