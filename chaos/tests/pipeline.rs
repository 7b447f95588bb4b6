//! Toxics timed from each chunk's arrival, as Toxiproxy's stages are: a response written
//! in many pieces pays a latency toxic once, a bandwidth cap holds over a megabyte, and
//! toxics added or removed mid-connection act from the next chunk / at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aimate_chaos::proxy::Proxy;
use aimate_chaos::toxic::{Stream, Toxic, ToxicKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How an upstream answers each one-byte request: `pieces` writes of `size` bytes,
/// `gap` apart.
#[derive(Clone, Copy)]
struct Answer {
    pieces: usize,
    size: usize,
    gap: Duration,
}

impl Answer {
    fn total(self) -> usize {
        self.pieces * self.size
    }
}

/// An upstream that answers every byte it reads with `answer`, written piece by piece.
async fn writer_upstream(answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let piece = vec![b'x'; answer.size];
                let mut request = [0u8; 1];
                while socket.read_exact(&mut request).await.is_ok() {
                    for i in 0..answer.pieces {
                        if socket.write_all(&piece).await.is_err() {
                            return;
                        }
                        if !answer.gap.is_zero() && i + 1 < answer.pieces {
                            tokio::time::sleep(answer.gap).await;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Asks once and reads the whole answer; returns how long that took.
async fn ask(client: &mut TcpStream, total: usize) -> Duration {
    let started = Instant::now();
    client.write_all(b"?").await.unwrap();
    let mut answer = vec![0u8; total];
    client.read_exact(&mut answer).await.unwrap();
    started.elapsed()
}

fn latency(ms: u64) -> Toxic {
    Toxic {
        name: "latency".into(),
        kind: ToxicKind::Latency {
            latency: ms,
            jitter: 0,
        },
        stream: Stream::Downstream,
        toxicity: 1.0,
    }
}

/// The least of `runs` timings: scheduling noise on a shared machine only ever adds.
async fn fastest(client: &mut TcpStream, total: usize, runs: usize) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        best = best.min(ask(client, total).await);
    }
    best
}

#[tokio::test]
async fn a_latency_toxic_is_paid_once_however_the_answer_is_written() {
    let cases = [
        // Headers then body, as Python's http.server writes them.
        Answer {
            pieces: 2,
            size: 200,
            gap: Duration::from_millis(20),
        },
        Answer {
            pieces: 10,
            size: 100,
            gap: Duration::from_millis(5),
        },
        Answer {
            pieces: 1_000,
            size: 10,
            gap: Duration::ZERO,
        },
        // A 1 MB body.
        Answer {
            pieces: 16,
            size: 64 * 1024,
            gap: Duration::ZERO,
        },
    ];
    for answer in cases {
        let proxy = Proxy::start("writer", "127.0.0.1:0", &writer_upstream(answer).await)
            .await
            .unwrap();
        let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
        let plain = fastest(&mut client, answer.total(), 3).await;
        proxy.add_toxic(latency(100)).unwrap();
        let slowed = fastest(&mut client, answer.total(), 3).await;
        let added = slowed.saturating_sub(plain);
        eprintln!(
            "{} writes of {} bytes: +{:.1} ms",
            answer.pieces,
            answer.size,
            added.as_secs_f64() * 1000.0
        );
        assert!(
            added >= Duration::from_millis(85) && added <= Duration::from_millis(115),
            "{} writes of {} bytes: 100 ms latency added {added:?} ({plain:?} → {slowed:?})",
            answer.pieces,
            answer.size
        );
    }
}

#[tokio::test]
async fn bandwidth_caps_a_megabyte_at_the_rate() {
    let answer = Answer {
        pieces: 16,
        size: 64 * 1024,
        gap: Duration::ZERO,
    };
    let proxy = Proxy::start("writer", "127.0.0.1:0", &writer_upstream(answer).await)
        .await
        .unwrap();
    // 2,000 KB/s: 1,048,576 bytes in 0.524 s.
    proxy
        .add_toxic(Toxic {
            name: "narrow".into(),
            kind: ToxicKind::Bandwidth { rate: 2_000 },
            stream: Stream::Downstream,
            toxicity: 1.0,
        })
        .unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    let took = ask(&mut client, answer.total()).await;
    let rate = answer.total() as f64 / took.as_secs_f64() / 1000.0;
    eprintln!("1 MB through a 2,000 KB/s cap: {rate:.0} KB/s");
    assert!(
        (1_800.0..=2_200.0).contains(&rate),
        "1 MB at {rate:.0} KB/s in {took:?} (cap 2,000 KB/s)"
    );
}

#[tokio::test]
async fn a_toxic_applies_from_the_next_chunk_and_its_removal_at_once() {
    let answer = Answer {
        pieces: 1,
        size: 10,
        gap: Duration::ZERO,
    };
    let proxy = Proxy::start("writer", "127.0.0.1:0", &writer_upstream(answer).await)
        .await
        .unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    assert!(ask(&mut client, 10).await < Duration::from_millis(50));
    // Added while the connection is open: the next answer is delayed.
    proxy.add_toxic(latency(300)).unwrap();
    let delayed = ask(&mut client, 10).await;
    assert!(delayed >= Duration::from_millis(290), "{delayed:?}");

    // Removed while it holds an answer (of a 5 s latency): the answer goes at once.
    proxy.remove_toxic("latency").unwrap();
    proxy.add_toxic(latency(5_000)).unwrap();
    let started = Instant::now();
    client.write_all(b"?").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.remove_toxic("latency").unwrap();
    let mut back = [0u8; 10];
    client.read_exact(&mut back).await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(400),
        "held {took:?} after its toxic was removed at 200 ms"
    );
    assert!(ask(&mut client, 10).await < Duration::from_millis(50));
}

#[tokio::test]
async fn a_slow_writer_behind_a_latency_toxic_is_not_slowed_per_piece() {
    // Ten pieces 50 ms apart (a streaming upstream): 450 ms of writing, plus the
    // latency once, not ten times.
    let answer = Answer {
        pieces: 10,
        size: 100,
        gap: Duration::from_millis(50),
    };
    let proxy = Proxy::start("writer", "127.0.0.1:0", &writer_upstream(answer).await)
        .await
        .unwrap();
    proxy.add_toxic(latency(100)).unwrap();
    let mut client = TcpStream::connect(proxy.listen_addr()).await.unwrap();
    let took = fastest(&mut client, answer.total(), 2).await;
    assert!(
        took >= Duration::from_millis(540) && took <= Duration::from_millis(650),
        "{took:?}: expected about 450 ms of writing plus 100 ms once"
    );
}
