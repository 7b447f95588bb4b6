//! HTTP/1.1 on a proxied connection: where each request and response begins and ends,
//! so that HTTP-aware toxics (`http_status`, `http_delay`, `http_abort`) can act on one
//! request at a time, in order, with keep-alive and pipelining.
//!
//! ```text
//! client ─ requests ─▶ split: forward | delay | answer here ─▶ server
//!                         │ (in request order)
//!                         ▼
//!                 pending: [forwarded, answered-here(503…), forwarded+abort, …]
//!                         │
//! client ◀─ responses ── each server response matched to its request; answers made
//!                        here go out in their turn; an abort resets mid-response
//! ```
//!
//! Both directions are framed from the first byte of the connection (heads parsed with
//! `httparse`, bodies by `Content-Length` or chunked coding), whether or not an HTTP
//! toxic is set, so one added later acts on the next request of every open keep-alive
//! connection. Traffic that is not HTTP/1.1 (a first byte that does not parse, an
//! `Upgrade`, `CONNECT`) turns the connection opaque: bytes pass untouched.
//!
//! Everything here is synchronous: the link asks what to write and writes it. Message
//! framing is [`crate::http_framing`].

use std::collections::VecDeque;
use std::sync::Mutex;

use rand::Rng;
use tokio::sync::watch;

use crate::http_framing::{Body, framing, head_end, header};
use crate::toxic::{HttpMatch, Toxic, ToxicKind};

/// Longest request or response head accepted; a longer one turns the connection opaque.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// What to do with a run of request bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    /// Forward, `delay` ms after the bytes arrived (`http_delay`).
    Delay(u64),
    /// Answered here (`http_status`): not forwarded.
    Drop,
}

/// Request bytes the upstream side should write (or not), with what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct Segment {
    pub bytes: Vec<u8>,
    pub action: Action,
}

/// What the downstream side should write.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    Bytes(Vec<u8>),
    /// Reset the connection now (`http_abort`).
    Reset,
}

/// A request in flight, in request order.
#[derive(Debug)]
enum Pending {
    /// Sent to the server; its response is to come. `abort_after`: reset once the
    /// response head and this many body bytes went out.
    Forwarded {
        head: bool,
        abort_after: Option<u64>,
    },
    /// Answered here: these bytes go to the client in their turn.
    Local(Vec<u8>),
}

/// Where a message stream is.
#[derive(Debug)]
enum Phase {
    /// Reading a head (its bytes so far).
    Head,
    Body(Body),
    /// Not (or no longer) HTTP/1.1: everything passes.
    Opaque,
}

/// The requests side (client → server).
struct Requests {
    phase: Phase,
    head: Vec<u8>,
    /// Bytes of `head` already forwarded (it started while no HTTP toxic was set).
    head_forwarded: usize,
    action: Action,
}

/// The responses side (server → client).
struct Responses {
    phase: Phase,
    head: Vec<u8>,
    /// The request the current response answers.
    answering: Option<(bool, Option<u64>)>,
    /// Body bytes of the current response written so far.
    body_written: u64,
}

struct State {
    requests: Requests,
    responses: Responses,
    pending: VecDeque<Pending>,
}

/// One connection's HTTP exchange, shared by its two links.
pub struct HttpExchange {
    state: Mutex<State>,
    /// Bumped when an answer made here is queued: an idle downstream link wakes for it.
    queued: watch::Sender<u64>,
}

impl Default for HttpExchange {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                requests: Requests {
                    phase: Phase::Head,
                    head: Vec::new(),
                    head_forwarded: 0,
                    action: Action::Forward,
                },
                responses: Responses {
                    phase: Phase::Head,
                    head: Vec::new(),
                    answering: None,
                    body_written: 0,
                },
                pending: VecDeque::new(),
            }),
            queued: watch::Sender::new(0),
        }
    }
}

/// Whether any of `toxics` is HTTP-aware.
pub fn any_http(toxics: &[Toxic]) -> bool {
    toxics.iter().any(|t| t.kind.http_match().is_some())
}

/// The toxic that takes this request, if any: the first whose method and path match and
/// whose share is rolled.
fn choose<'t>(toxics: &'t [Toxic], method: &str, path: &str) -> Option<&'t ToxicKind> {
    toxics.iter().map(|t| &t.kind).find(|kind| {
        kind.http_match().is_some_and(|m: &HttpMatch| {
            m.matches(method, path) && rand::rng().random::<f64>() < m.share
        })
    })
}

/// `status` with its reason phrase, `Retry-After`, and `body` (JSON), closing nothing.
fn local_response(status: u16, body: &str, retry_after: Option<u64>) -> Vec<u8> {
    let reason = http_reason(status);
    let retry = retry_after
        .map(|s| format!("retry-after: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         {retry}x-aimate-chaos: http_status\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn http_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

impl HttpExchange {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.queued.subscribe()
    }

    /// Splits request bytes by request and decides each one's fate against `toxics`.
    /// With an HTTP toxic set, a head is held until complete (to be matched); without,
    /// bytes pass at once and are only followed.
    pub fn requests(&self, data: &[u8], toxics: &[Toxic]) -> Vec<Segment> {
        let mut state = self.lock();
        let (out, queued_local) = frame_requests(&mut state, data, toxics, true);
        drop(state);
        if queued_local {
            self.queued.send_modify(|v| *v += 1);
        }
        out
    }

    /// Follows request bytes while no HTTP toxic is set. `None`: write `data` as it is;
    /// `Some`: bytes were held for a toxic since removed, write these instead.
    pub fn follow_requests(&self, data: &[u8]) -> Option<Vec<Segment>> {
        let mut state = self.lock();
        let held = state.requests.head.len() > state.requests.head_forwarded
            && matches!(state.requests.phase, Phase::Head);
        let (out, _) = frame_requests(&mut state, data, &[], held);
        held.then_some(out)
    }

    /// Frames response bytes from the server and says what to write to the client:
    /// answers made here in their turn, the server's responses, a reset for an abort.
    pub fn responses(&self, data: &[u8]) -> Vec<Out> {
        frame_responses(&mut self.lock(), data, true)
    }

    /// Follows response bytes. `None`: nothing to add or cut, write `data` as it is
    /// (the common case, no copy); `Some`: write these instead.
    pub fn responses_plain(&self, data: &[u8]) -> Option<Vec<Out>> {
        let mut state = self.lock();
        let care = state.pending.iter().any(|p| match p {
            Pending::Local(_) => true,
            Pending::Forwarded { abort_after, .. } => abort_after.is_some(),
        }) || state
            .responses
            .answering
            .is_some_and(|(_, abort)| abort.is_some());
        let out = frame_responses(&mut state, data, care);
        care.then_some(out)
    }

    /// Answers made here that can go out now (the server owes nothing before them).
    pub fn ready(&self) -> Vec<u8> {
        let mut state = self.lock();
        let State {
            responses, pending, ..
        } = &mut *state;
        let mut out = Vec::new();
        if matches!(responses.phase, Phase::Head) && responses.head.is_empty() {
            while let Some(Pending::Local(_)) = pending.front() {
                if let Some(Pending::Local(bytes)) = pending.pop_front() {
                    out.extend_from_slice(&bytes);
                }
            }
        }
        out
    }
}

fn frame_requests(
    state: &mut State,
    data: &[u8],
    toxics: &[Toxic],
    collect: bool,
) -> (Vec<Segment>, bool) {
    let hold = any_http(toxics);
    let mut out: Vec<Segment> = Vec::new();
    let push = |out: &mut Vec<Segment>, bytes: &[u8], action: Action| {
        if bytes.is_empty() || !collect {
            return;
        }
        match out.last_mut() {
            Some(last) if last.action == action => last.bytes.extend_from_slice(bytes),
            _ => out.push(Segment {
                bytes: bytes.to_vec(),
                action,
            }),
        }
    };
    let mut queued_local = false;
    let State {
        requests, pending, ..
    } = state;
    let mut rest = data;
    while !rest.is_empty() {
        match &mut requests.phase {
            Phase::Opaque => {
                push(&mut out, rest, Action::Forward);
                rest = &[];
            }
            Phase::Body(body) => {
                let Some((used, done)) = body.consume(rest) else {
                    requests.phase = Phase::Opaque;
                    continue;
                };
                push(&mut out, &rest[..used], requests.action);
                rest = &rest[used..];
                if done {
                    requests.phase = Phase::Head;
                }
            }
            Phase::Head => {
                let before = requests.head.len();
                let end = {
                    requests.head.extend_from_slice(rest);
                    head_end(&requests.head, before)
                };
                let Some(end) = end else {
                    rest = &[];
                    // Bytes that cannot begin a request (binary, TLS) are not HTTP: pass
                    // them, and everything after, at once.
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let not_http = httparse::Request::new(&mut headers)
                        .parse(&requests.head)
                        .is_err();
                    if requests.head.len() > MAX_HEAD || not_http {
                        requests.phase = Phase::Opaque;
                        let held = std::mem::take(&mut requests.head);
                        push(&mut out, &held[requests.head_forwarded..], Action::Forward);
                    } else if !hold {
                        push(
                            &mut out,
                            &requests.head[requests.head_forwarded..],
                            Action::Forward,
                        );
                        requests.head_forwarded = requests.head.len();
                    }
                    continue;
                };
                // Bytes after the head's end belong to the body or the next request.
                let consumed = end - before;
                rest = &rest[consumed..];
                requests.head.truncate(end);
                let head = std::mem::take(&mut requests.head);
                let already = std::mem::take(&mut requests.head_forwarded);
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Request::new(&mut headers);
                let parsed_ok = matches!(parsed.parse(&head), Ok(httparse::Status::Complete(_)));
                let method = parsed.method.unwrap_or("").to_owned();
                let path = parsed.path.unwrap_or("").to_owned();
                let body = if parsed_ok {
                    framing(parsed.headers, Body::Length(0))
                } else {
                    None
                };
                let upgrade = method.eq_ignore_ascii_case("CONNECT")
                    || header(parsed.headers, "upgrade").is_some();
                let Some(body) = body else {
                    requests.phase = Phase::Opaque;
                    push(&mut out, &head[already..], Action::Forward);
                    continue;
                };
                let chosen = if already > 0 {
                    None
                } else {
                    choose(toxics, &method, &path)
                };
                let head_request = method.eq_ignore_ascii_case("HEAD");
                let action = match chosen {
                    Some(ToxicKind::HttpStatus {
                        status,
                        body,
                        retry_after,
                        ..
                    }) => {
                        pending.push_back(Pending::Local(local_response(
                            *status,
                            body,
                            *retry_after,
                        )));
                        queued_local = true;
                        Action::Drop
                    }
                    Some(ToxicKind::HttpDelay { delay, .. }) => {
                        pending.push_back(Pending::Forwarded {
                            head: head_request,
                            abort_after: None,
                        });
                        Action::Delay(*delay)
                    }
                    Some(ToxicKind::HttpAbort { after_bytes, .. }) => {
                        pending.push_back(Pending::Forwarded {
                            head: head_request,
                            abort_after: Some(*after_bytes),
                        });
                        Action::Forward
                    }
                    _ => {
                        pending.push_back(Pending::Forwarded {
                            head: head_request,
                            abort_after: None,
                        });
                        Action::Forward
                    }
                };
                push(&mut out, &head[already..], action);
                requests.action = action;
                requests.phase = if upgrade {
                    Phase::Opaque
                } else if body == Body::Length(0) {
                    Phase::Head
                } else {
                    Phase::Body(body)
                };
            }
        }
    }
    (out, queued_local)
}

fn frame_responses(state: &mut State, data: &[u8], collect: bool) -> Vec<Out> {
    let mut out: Vec<Out> = Vec::new();
    let write = |out: &mut Vec<Out>, bytes: &[u8]| {
        if bytes.is_empty() || !collect {
            return;
        }
        match out.last_mut() {
            Some(Out::Bytes(last)) => last.extend_from_slice(bytes),
            _ => out.push(Out::Bytes(bytes.to_vec())),
        }
    };
    let State {
        requests,
        responses,
        pending,
    } = state;
    // A client that does not speak HTTP gets answers that are not HTTP either.
    if matches!(requests.phase, Phase::Opaque) && pending.is_empty() {
        responses.phase = Phase::Opaque;
    }
    let mut rest = data;
    loop {
        if matches!(responses.phase, Phase::Head) && responses.head.is_empty() {
            // At a boundary: answers made here whose turn has come go first.
            while let Some(Pending::Local(_)) = pending.front() {
                if let Some(Pending::Local(bytes)) = pending.pop_front() {
                    write(&mut out, &bytes);
                }
            }
        }
        if rest.is_empty() {
            break;
        }
        match &mut responses.phase {
            Phase::Opaque => {
                write(&mut out, rest);
                rest = &[];
            }
            Phase::Body(body) => {
                let Some((used, done)) = body.consume(rest) else {
                    responses.phase = Phase::Opaque;
                    continue;
                };
                let (part, after) = rest.split_at(used);
                rest = after;
                if let Some((_, Some(limit))) = responses.answering {
                    let allowed = limit.saturating_sub(responses.body_written) as usize;
                    if part.len() >= allowed {
                        write(&mut out, &part[..allowed]);
                        out.push(Out::Reset);
                        responses.phase = Phase::Opaque;
                        return out;
                    }
                }
                responses.body_written += part.len() as u64;
                write(&mut out, part);
                if done {
                    responses.phase = Phase::Head;
                    responses.answering = None;
                }
            }
            Phase::Head => {
                let before = responses.head.len();
                responses.head.extend_from_slice(rest);
                let Some(end) = head_end(&responses.head, before) else {
                    // Head bytes pass as they come: nothing waits on a response head.
                    write(&mut out, rest);
                    rest = &[];
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let not_http = httparse::Response::new(&mut headers)
                        .parse(&responses.head)
                        .is_err();
                    if responses.head.len() > MAX_HEAD || not_http {
                        responses.phase = Phase::Opaque;
                        responses.head.clear();
                    }
                    continue;
                };
                let consumed = end - before;
                write(&mut out, &rest[..consumed]);
                rest = &rest[consumed..];
                responses.head.truncate(end);
                let head = std::mem::take(&mut responses.head);
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Response::new(&mut headers);
                if !matches!(parsed.parse(&head), Ok(httparse::Status::Complete(_))) {
                    responses.phase = Phase::Opaque;
                    continue;
                }
                let code = parsed.code.unwrap_or(0);
                if code == 101 {
                    responses.phase = Phase::Opaque;
                    continue;
                }
                if (100..200).contains(&code) {
                    // Interim (100 Continue): the final response is still to come.
                    continue;
                }
                let answering = match pending.pop_front() {
                    Some(Pending::Forwarded { head, abort_after }) => (head, abort_after),
                    Some(local @ Pending::Local(_)) => {
                        // Cannot happen (locals go first at a boundary); keep order.
                        pending.push_front(local);
                        (false, None)
                    }
                    None => (false, None),
                };
                let no_body = answering.0 || code == 204 || code == 304;
                let body = if no_body {
                    Some(Body::Length(0))
                } else {
                    framing(parsed.headers, Body::UntilClose)
                };
                let Some(body) = body else {
                    responses.phase = Phase::Opaque;
                    continue;
                };
                responses.answering = Some(answering);
                responses.body_written = 0;
                if answering.1 == Some(0) {
                    out.push(Out::Reset);
                    responses.phase = Phase::Opaque;
                    return out;
                }
                if body == Body::Length(0) {
                    responses.answering = None;
                    continue;
                }
                responses.phase = Phase::Body(body);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toxic::Stream;

    fn toxic(kind: ToxicKind) -> Toxic {
        Toxic {
            name: "t".into(),
            kind,
            stream: Stream::Upstream,
            toxicity: 1.0,
        }
    }

    fn status_503(method: &str, prefix: &str) -> Toxic {
        toxic(ToxicKind::HttpStatus {
            matching: HttpMatch {
                method: method.into(),
                path_prefix: prefix.into(),
                share: 1.0,
            },
            status: 503,
            body: r#"{"error":"injected"}"#.into(),
            retry_after: Some(2),
        })
    }

    fn bytes(out: &[Out]) -> Vec<u8> {
        out.iter()
            .flat_map(|o| match o {
                Out::Bytes(b) => b.clone(),
                Out::Reset => b"<RESET>".to_vec(),
            })
            .collect()
    }

    const GET: &[u8] = b"GET /api/jobs HTTP/1.1\r\nhost: x\r\n\r\n";
    const POST: &[u8] = b"POST /api/invoices HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello";
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    #[test]
    fn pipelined_requests_are_split_and_a_matching_one_is_answered_in_its_turn() {
        let exchange = HttpExchange::default();
        let toxics = [status_503("POST", "/api/invoices")];
        let mut wire = GET.to_vec();
        wire.extend_from_slice(POST);
        wire.extend_from_slice(GET);
        let segments = exchange.requests(&wire, &toxics);
        assert_eq!(
            segments,
            [
                Segment {
                    bytes: GET.to_vec(),
                    action: Action::Forward
                },
                Segment {
                    bytes: POST.to_vec(),
                    action: Action::Drop
                },
                Segment {
                    bytes: GET.to_vec(),
                    action: Action::Forward
                },
            ]
        );
        // No answer before the first GET's: the 503 waits for it.
        assert!(exchange.ready().is_empty());
        let mut server = OK.to_vec();
        server.extend_from_slice(OK);
        let text = String::from_utf8(bytes(&exchange.responses(&server))).unwrap();
        let first = text.find("HTTP/1.1 200").unwrap();
        let injected = text.find("HTTP/1.1 503 Service Unavailable").unwrap();
        let last = text.rfind("HTTP/1.1 200").unwrap();
        assert!(first < injected && injected < last, "{text}");
        assert!(text.contains("retry-after: 2\r\n"));
        assert!(text.contains(r#"{"error":"injected"}"#));
    }

    #[test]
    fn an_answer_made_here_goes_at_once_when_nothing_is_owed() {
        let exchange = HttpExchange::default();
        let segments = exchange.requests(POST, &[status_503("", "/")]);
        assert_eq!(segments[0].action, Action::Drop);
        let ready = String::from_utf8(exchange.ready()).unwrap();
        assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
        assert!(exchange.ready().is_empty(), "sent once");
    }

    #[test]
    fn heads_split_across_chunks_are_held_until_complete() {
        let exchange = HttpExchange::default();
        let toxics = [status_503("POST", "/api/invoices")];
        let (a, b) = POST.split_at(10);
        assert!(exchange.requests(a, &toxics).is_empty(), "held");
        let segments = exchange.requests(b, &toxics);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].bytes, POST.to_vec());
        assert_eq!(segments[0].action, Action::Drop);
        // Without an HTTP toxic, nothing is held.
        let plain = HttpExchange::default();
        assert_eq!(plain.requests(a, &[]).len(), 1);
    }

    #[test]
    fn chunked_bodies_and_non_matching_requests_pass() {
        let exchange = HttpExchange::default();
        let toxics = [status_503("DELETE", "/")];
        let chunked =
            b"POST /x HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        let mut wire = chunked.to_vec();
        wire.extend_from_slice(GET);
        let segments = exchange.requests(&wire, &toxics);
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].action, Action::Forward);
        assert_eq!(segments[0].bytes, wire);
        let response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        let mut server = response.to_vec();
        server.extend_from_slice(OK);
        assert_eq!(bytes(&exchange.responses(&server)), server);
    }

    #[test]
    fn an_abort_resets_after_the_head_and_the_allowed_body_bytes() {
        let exchange = HttpExchange::default();
        let toxics = [toxic(ToxicKind::HttpAbort {
            matching: HttpMatch {
                method: "GET".into(),
                path_prefix: "/api/jobs".into(),
                share: 1.0,
            },
            after_bytes: 1,
        })];
        exchange.requests(GET, &toxics);
        let out = exchange.responses(OK);
        let text = String::from_utf8(bytes(&out)).unwrap();
        assert!(text.ends_with("\r\n\r\no<RESET>"), "{text}");
    }

    #[test]
    fn non_http_traffic_passes_untouched() {
        let exchange = HttpExchange::default();
        let toxics = [status_503("", "/")];
        let wire = b"\x16\x03\x01 binary, not HTTP\r\n\r\nmore";
        let segments = exchange.requests(wire, &toxics);
        // Without a blank line too: not held waiting for a head that never comes.
        let other = HttpExchange::default();
        assert_eq!(
            bytes_of(&other.requests(b"\x00\x01\x02", &toxics)),
            b"\x00\x01\x02"
        );
        assert_eq!(bytes_of(&segments), wire.to_vec());
        assert!(segments.iter().all(|s| s.action == Action::Forward));
        assert_eq!(
            bytes(&exchange.responses(b"anything")),
            b"anything".to_vec()
        );
    }

    #[test]
    fn a_server_that_speaks_first_in_binary_is_not_framed() {
        // A PostgreSQL or MySQL greeting: passed at once, nothing kept for a head.
        let exchange = HttpExchange::default();
        let greeting = b"\x4a\x00\x00\x00\x0a8.0.36\x00";
        assert!(exchange.responses_plain(greeting).is_none());
        let state = exchange.lock();
        assert!(matches!(state.responses.phase, Phase::Opaque));
        assert!(state.responses.head.is_empty());
    }

    fn bytes_of(segments: &[Segment]) -> Vec<u8> {
        segments.iter().flat_map(|s| s.bytes.clone()).collect()
    }

    #[test]
    fn head_requests_and_interim_responses_keep_the_framing() {
        let exchange = HttpExchange::default();
        let head = b"HEAD /x HTTP/1.1\r\n\r\n";
        let mut wire = head.to_vec();
        wire.extend_from_slice(POST);
        exchange.requests(&wire, &[status_503("POST", "/")]);
        // The HEAD response announces a length but has no body; the 503 follows it.
        let out = exchange.responses(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n",
        );
        let text = String::from_utf8(bytes(&out)).unwrap();
        assert!(
            text.ends_with(
                &String::from_utf8(local_response(503, r#"{"error":"injected"}"#, Some(2)))
                    .unwrap()
            ),
            "{text}"
        );
    }
}
