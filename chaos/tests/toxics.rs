//! Each toxic against a real loopback echo server through a real proxy, with its effect
//! measured and a stated tolerance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use aimate_chaos::proxy::{Proxy, ProxyError};
use aimate_chaos::toxic::{Stream, Toxic, ToxicKind};
use support::echo_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Scheduling noise allowed on top of an injected delay on a shared 2-core machine.
const TOLERANCE: Duration = Duration::from_millis(80);

async fn proxy() -> Proxy {
    Proxy::start("echo", "127.0.0.1:0", &echo_server().await)
        .await
        .unwrap()
}

fn toxic(name: &str, kind: ToxicKind, stream: Stream) -> Toxic {
    Toxic {
        name: name.into(),
        kind,
        stream,
        toxicity: 1.0,
    }
}

/// Sends `message` and reads the same number of bytes back; returns the round trip.
async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Duration {
    let started = Instant::now();
    stream.write_all(message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, message);
    started.elapsed()
}

#[tokio::test]
async fn without_toxics_bytes_pass_unchanged() {
    let proxy = proxy().await;
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    let elapsed = round_trip(&mut client, b"hello through the proxy").await;
    assert!(elapsed < TOLERANCE, "{elapsed:?}");
}

#[tokio::test]
async fn latency_with_jitter_delays_each_chunk() {
    let proxy = proxy().await;
    proxy
        .add_toxic(toxic(
            "slow",
            ToxicKind::Latency {
                latency: 100,
                jitter: 20,
            },
            Stream::Downstream,
        ))
        .unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    for _ in 0..5 {
        let elapsed = round_trip(&mut client, b"ping").await;
        assert!(elapsed >= Duration::from_millis(80), "{elapsed:?}");
        assert!(
            elapsed <= Duration::from_millis(120) + TOLERANCE,
            "{elapsed:?}"
        );
    }
}

#[tokio::test]
async fn toxics_apply_live_and_toxicity_zero_spares_connections() {
    let proxy = proxy().await;
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    assert!(round_trip(&mut client, b"a").await < TOLERANCE);
    proxy
        .add_toxic(toxic(
            "slow",
            ToxicKind::Latency {
                latency: 150,
                jitter: 0,
            },
            Stream::Upstream,
        ))
        .unwrap();
    assert!(
        round_trip(&mut client, b"b").await >= Duration::from_millis(150),
        "added to an open connection"
    );
    proxy.remove_toxic("slow").unwrap();
    assert!(
        round_trip(&mut client, b"c").await < TOLERANCE,
        "removed from an open connection"
    );
    assert!(matches!(
        proxy.remove_toxic("slow"),
        Err(ProxyError::ToxicNotFound(_))
    ));

    let mut spared = toxic(
        "never",
        ToxicKind::Latency {
            latency: 300,
            jitter: 0,
        },
        Stream::Downstream,
    );
    spared.toxicity = 0.0;
    proxy.add_toxic(spared.clone()).unwrap();
    assert!(matches!(
        proxy.add_toxic(spared),
        Err(ProxyError::ToxicExists(_))
    ));
    let mut fresh = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    assert!(round_trip(&mut fresh, b"d").await < TOLERANCE);
}

#[tokio::test]
async fn bandwidth_limits_throughput() {
    let proxy = proxy().await;
    // 50 KB/s downstream: 25 KB takes about half a second to come back.
    proxy
        .add_toxic(toxic(
            "narrow",
            ToxicKind::Bandwidth { rate: 50 },
            Stream::Downstream,
        ))
        .unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    let elapsed = round_trip(&mut client, &vec![7u8; 25_000]).await;
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(
        elapsed <= Duration::from_millis(500) + TOLERANCE * 3,
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn limit_data_closes_after_the_limit() {
    let proxy = proxy().await;
    proxy
        .add_toxic(toxic(
            "cap",
            ToxicKind::LimitData { bytes: 10 },
            Stream::Downstream,
        ))
        .unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    client.write_all(b"0123456789abcdefghij").await.unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received, b"0123456789");
}

#[tokio::test]
async fn reset_peer_resets() {
    let proxy = proxy().await;
    proxy
        .add_toxic(toxic(
            "rst",
            ToxicKind::ResetPeer { timeout: 100 },
            Stream::Downstream,
        ))
        .unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    let started = Instant::now();
    client.write_all(b"hello").await.unwrap();
    let mut buffer = [0u8; 16];
    let result = tokio::time::timeout(Duration::from_secs(2), client.read(&mut buffer))
        .await
        .unwrap();
    let error = result.expect_err("a reset, not data or a clean close");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(started.elapsed() >= Duration::from_millis(100));
}

#[tokio::test]
async fn timeout_drops_data_then_closes() {
    let proxy = proxy().await;
    proxy
        .add_toxic(toxic(
            "hang",
            ToxicKind::Timeout { timeout: 300 },
            Stream::Upstream,
        ))
        .unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    let started = Instant::now();
    client.write_all(b"anyone there?").await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), client.read_to_end(&mut received))
        .await
        .unwrap();
    assert!(received.is_empty(), "no data gets through");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300)
            && elapsed <= Duration::from_millis(300) + TOLERANCE * 2,
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn slicer_keeps_the_bytes_and_spreads_them_out() {
    let proxy = proxy().await;
    proxy
        .add_toxic(toxic(
            "slices",
            ToxicKind::Slicer {
                average_size: 100,
                size_variation: 20,
                delay: 10_000,
            },
            Stream::Downstream,
        ))
        .unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    let message: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    // About ten slices 10 ms apart.
    let elapsed = round_trip(&mut client, &message).await;
    assert!(elapsed >= Duration::from_millis(60), "{elapsed:?}");
}

#[tokio::test]
async fn slow_close_delays_the_close() {
    let proxy = proxy().await;
    proxy
        .add_toxic(toxic(
            "linger",
            ToxicKind::SlowClose { delay: 300 },
            Stream::Upstream,
        ))
        .unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    round_trip(&mut client, b"bye").await;
    let started = Instant::now();
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), client.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn disabling_ends_connections_and_refuses_new_ones() {
    let proxy = proxy().await;
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    round_trip(&mut client, b"up").await;
    proxy.set_enabled(false);
    let mut buffer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok(), "the open connection was ended");
    let mut refused = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    let mut byte = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(2), refused.read(&mut byte))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "a new connection is closed at once");
    proxy.set_enabled(true);
    let mut again = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    round_trip(&mut again, b"back").await;
}
