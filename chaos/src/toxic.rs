//! Toxics: what the proxy does to the bytes of one direction of a connection. The
//! names, attributes and units are Toxiproxy's, so its clients and habits carry over:
//!
//! ```json
//! {"name": "slow_db", "type": "latency", "stream": "downstream", "toxicity": 1.0,
//!  "attributes": {"latency": 100, "jitter": 10}}
//! ```
//!
//! A closed set checked by `match`: no registry, no reflection.

use serde::{Deserialize, Serialize};

/// Which way the bytes flow: `upstream` is client → server, `downstream` server → client.
/// As `usize`: upstream 0, downstream 1 (per-direction counters are indexed so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream = 0,
    #[default]
    Downstream = 1,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
        }
    }
}

/// The kinds of fault, with Toxiproxy's attributes (times in milliseconds, rates in KB/s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum ToxicKind {
    /// Delays every chunk by `latency` ± `jitter` ms.
    Latency {
        #[serde(default)]
        latency: u64,
        #[serde(default)]
        jitter: u64,
    },
    /// Limits throughput to `rate` KB/s.
    Bandwidth {
        #[serde(default)]
        rate: u64,
    },
    /// Delays the close of the connection by `delay` ms.
    SlowClose {
        #[serde(default)]
        delay: u64,
    },
    /// Stops all data; closes the connection after `timeout` ms (never when 0).
    Timeout {
        #[serde(default)]
        timeout: u64,
    },
    /// Resets the connection (TCP RST) after `timeout` ms.
    ResetPeer {
        #[serde(default)]
        timeout: u64,
    },
    /// Splits data into chunks of `average_size` ± `size_variation` bytes, `delay` µs apart.
    Slicer {
        #[serde(default)]
        average_size: usize,
        #[serde(default)]
        size_variation: usize,
        #[serde(default)]
        delay: u64,
    },
    /// Closes the connection once `bytes` bytes have passed.
    LimitData {
        #[serde(default)]
        bytes: u64,
    },
    /// HTTP: answers a share of the matching requests itself with `status` and `body`
    /// (JSON), with `Retry-After: retry_after` seconds when set, without forwarding them.
    HttpStatus {
        #[serde(flatten)]
        matching: HttpMatch,
        #[serde(default = "service_unavailable")]
        status: u16,
        #[serde(default = "injected_body")]
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// HTTP: holds a share of the matching requests `delay` ms before forwarding them.
    HttpDelay {
        #[serde(flatten)]
        matching: HttpMatch,
        #[serde(default)]
        delay: u64,
    },
    /// HTTP: resets the connection (TCP RST) in the middle of the response to a share of
    /// the matching requests, after its head and `after_bytes` bytes of its body.
    HttpAbort {
        #[serde(flatten)]
        matching: HttpMatch,
        #[serde(default)]
        after_bytes: u64,
    },
}

/// Which requests an HTTP toxic acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpMatch {
    /// Request method (`POST`), any case; empty: every method.
    #[serde(default)]
    pub method: String,
    /// Prefix of the request target (`/api/invoices`); empty: every path.
    #[serde(default)]
    pub path_prefix: String,
    /// Share (0–1) of the matching requests affected, rolled per request.
    #[serde(default = "every")]
    pub share: f64,
}

impl HttpMatch {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        (self.method.is_empty() || self.method.eq_ignore_ascii_case(method))
            && path.starts_with(&self.path_prefix)
    }
}

fn every() -> f64 {
    1.0
}

fn service_unavailable() -> u16 {
    503
}

fn injected_body() -> String {
    r#"{"error":"service unavailable (injected by aimate chaos)"}"#.to_owned()
}

impl ToxicKind {
    /// The request matcher of an HTTP-aware toxic; `None` for the TCP ones.
    pub fn http_match(&self) -> Option<&HttpMatch> {
        match self {
            Self::HttpStatus { matching, .. }
            | Self::HttpDelay { matching, .. }
            | Self::HttpAbort { matching, .. } => Some(matching),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    pub name: String,
    #[serde(flatten)]
    pub kind: ToxicKind,
    #[serde(default)]
    pub stream: Stream,
    /// Probability (0–1) that a connection gets this toxic at all.
    #[serde(default = "always")]
    pub toxicity: f32,
}

fn always() -> f32 {
    1.0
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ToxicError {
    #[error("toxicity must be between 0 and 1 (got {0})")]
    Toxicity(f32),
    #[error("{0}")]
    Attribute(String),
}

impl Toxic {
    /// The toxic's `type` as Toxiproxy names it.
    pub fn type_name(kind: &ToxicKind) -> &'static str {
        match kind {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::HttpStatus { .. } => "http_status",
            ToxicKind::HttpDelay { .. } => "http_delay",
            ToxicKind::HttpAbort { .. } => "http_abort",
        }
    }

    /// The default name Toxiproxy gives: `<type>_<stream>`.
    pub fn default_name(kind: &ToxicKind, stream: Stream) -> String {
        format!("{}_{}", Self::type_name(kind), stream.name())
    }

    /// HTTP-aware toxics act on requests, so they live on the upstream stream whatever
    /// the client said (Toxiproxy's default stream is downstream).
    pub fn normalized(mut self) -> Self {
        if self.kind.http_match().is_some() {
            self.stream = Stream::Upstream;
        }
        self
    }

    pub fn validate(&self) -> Result<(), ToxicError> {
        if !(0.0..=1.0).contains(&self.toxicity) || self.toxicity.is_nan() {
            return Err(ToxicError::Toxicity(self.toxicity));
        }
        match &self.kind {
            ToxicKind::Slicer {
                average_size: 0, ..
            } => Err(ToxicError::Attribute(
                "slicer needs average_size > 0".into(),
            )),
            ToxicKind::Slicer {
                average_size,
                size_variation,
                ..
            } if size_variation >= average_size => Err(ToxicError::Attribute(
                "slicer needs size_variation < average_size".into(),
            )),
            ToxicKind::HttpStatus { status, .. } if !(100..=599).contains(status) => Err(
                ToxicError::Attribute(format!("http_status needs a status 100–599 (got {status})")),
            ),
            kind => match kind.http_match() {
                Some(m) if !(0.0..=1.0).contains(&m.share) || m.share.is_nan() => {
                    Err(ToxicError::Attribute(format!(
                        "share must be between 0 and 1 (got {})",
                        m.share
                    )))
                }
                _ => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_toxiproxy_json() {
        let toxic: Toxic = serde_json::from_str(
            r#"{"name":"slow","type":"latency","stream":"upstream","toxicity":0.5,"attributes":{"latency":100,"jitter":10}}"#,
        )
        .unwrap();
        assert_eq!(
            toxic.kind,
            ToxicKind::Latency {
                latency: 100,
                jitter: 10
            }
        );
        assert_eq!((toxic.stream, toxic.toxicity), (Stream::Upstream, 0.5));
        let back = serde_json::to_value(&toxic).unwrap();
        assert_eq!(back["type"], "latency");
        assert_eq!(back["attributes"]["latency"], 100);
        // Defaults: downstream, toxicity 1.
        let toxic: Toxic =
            serde_json::from_str(r#"{"name":"t","type":"timeout","attributes":{"timeout":0}}"#)
                .unwrap();
        assert_eq!((toxic.stream, toxic.toxicity), (Stream::Downstream, 1.0));
        assert!(
            serde_json::from_str::<Toxic>(r#"{"name":"t","type":"explode","attributes":{}}"#)
                .is_err()
        );
    }

    #[test]
    fn validation() {
        let mut toxic = Toxic {
            name: "x".into(),
            kind: ToxicKind::Bandwidth { rate: 10 },
            stream: Stream::Upstream,
            toxicity: 1.5,
        };
        assert_eq!(toxic.validate(), Err(ToxicError::Toxicity(1.5)));
        toxic.toxicity = 1.0;
        assert!(toxic.validate().is_ok());
        toxic.kind = ToxicKind::Slicer {
            average_size: 10,
            size_variation: 10,
            delay: 0,
        };
        assert!(toxic.validate().is_err());
        assert_eq!(
            Toxic::default_name(&ToxicKind::ResetPeer { timeout: 0 }, Stream::Upstream),
            "reset_peer_upstream"
        );
    }
}
