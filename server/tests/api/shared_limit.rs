//! The fleet's rate limiter in Redis (`--redis-url`): a key's limit holds across
//! instances, and a Redis that is down degrades to per-instance limits, never to errors.
//! Needs `TEST_REDIS_URL` (set by `.ci/run`); says so when skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aimate_server::ratelimit::{LocalRateLimiter, RateLimiter};
use aimate_server::ratelimit_redis::RedisRateLimiter;
use reqwest::Method;

use crate::common::{Backend, TestServer, redis_url, unique_prefix};

/// Offers `per_instance` checks a second to each limiter, evenly, for `seconds`;
/// returns how many were allowed in all.
async fn offer(limiters: &[Arc<dyn RateLimiter>], per_instance: u32, seconds: u32) -> u32 {
    let tick = Duration::from_secs(1) / per_instance;
    let mut allowed = 0;
    let started = tokio::time::Instant::now();
    for i in 0..per_instance * seconds {
        tokio::time::sleep_until(started + tick * i).await;
        for limiter in limiters {
            allowed += u32::from(limiter.check(1).await.allowed);
        }
    }
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_one_limit() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    // 100 req/s with a burst of 10, three instances, 300 req/s offered evenly for 2 s.
    let shared: Vec<Arc<dyn RateLimiter>> = (0..3)
        .map(|_| {
            Arc::new(
                RedisRateLimiter::new(&url, &prefix, 100, 10)
                    .unwrap()
                    .unwrap(),
            ) as Arc<dyn RateLimiter>
        })
        .collect();
    let allowed = offer(&shared, 100, 2).await;
    // 10 at once, then 100 a second: about 210.
    assert!(
        (180..=240).contains(&allowed),
        "{allowed} of 600 allowed by the fleet (expected about 210)"
    );
    // Each on its own would have let through three times as many.
    let local: Vec<Arc<dyn RateLimiter>> = (0..3)
        .map(|_| Arc::new(LocalRateLimiter::new(100, 10).unwrap()) as Arc<dyn RateLimiter>)
        .collect();
    let alone = offer(&local, 100, 2).await;
    eprintln!(
        "300 req/s for 2 s at a limit of 100/s: {allowed} allowed shared, {alone} per instance"
    );
    assert!(
        alone > 2 * allowed,
        "{alone} allowed by three local limiters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_check_says_when_to_retry() {
    let Some(url) = redis_url() else { return };
    let limiter = RedisRateLimiter::new(&url, &unique_prefix(), 1, 3)
        .unwrap()
        .unwrap();
    for expected in [2, 1, 0] {
        let decision = limiter.check(7).await;
        assert!(decision.allowed);
        assert_eq!((decision.limit, decision.remaining), (3, expected));
    }
    let refused = limiter.check(7).await;
    assert!(!refused.allowed);
    assert!(
        refused.reset_after > Duration::ZERO && refused.reset_after <= Duration::from_secs(1),
        "{refused:?}"
    );
    assert!(
        limiter.check(8).await.allowed,
        "another key has its own budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_enforce_one_limit() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix();
    let start = || {
        let (url, prefix) = (url.clone(), prefix.clone());
        TestServer::start(Backend::Sqlite, move |c| {
            c.redis_url = Some(url);
            c.redis_prefix = prefix;
            c.rate_limit_per_second = 1;
            c.rate_limit_burst = 4;
        })
    };
    let (a, b) = (start().await.unwrap(), start().await.unwrap());
    // Each has its own database; the first tenant of each is tenant 1, the same limiter
    // key, as one tenant seen by two instances of a fleet.
    let (key_a, key_b) = (a.tenant("Acme").await, b.tenant("Acme").await);
    for _ in 0..2 {
        for (server, key) in [(&a, &key_a), (&b, &key_b)] {
            let response = server
                .request(Method::GET, "/api/dashboard", key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    }
    // Four went through, two on each: the fifth is refused, wherever it lands.
    let refused = a
        .request(Method::GET, "/api/dashboard", &key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["ratelimit-limit"], "4");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert!(refused.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_falls_back_to_per_instance_limits() {
    let server = TestServer::start(Backend::Sqlite, |c| {
        // Nothing listens on port 1.
        c.redis_url = Some("redis://127.0.0.1:1".into());
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 3;
    })
    .await
    .unwrap();
    let key = server.tenant("Acme").await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = server
            .request(Method::GET, "/api/dashboard", &key)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "the local limit, no 5xx");
    assert_eq!(
        server.metric("rate_limit_fallbacks_total", &[]).await,
        4.0,
        "every decision made alone is counted"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no request waits on the dead Redis: {:?}",
        started.elapsed()
    );
}

/// A relay between a limiter and Redis that counts the bytes the limiter sends and,
/// once `silent`, swallows them: Redis gone quiet with its connections still open (a
/// paused container, a stopped one behind a proxy), the case a refused connect does not
/// cover.
async fn silent_relay(
    upstream: String,
) -> (
    String,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let (silent_flag, sent_count) = (silent.clone(), sent.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (silent, sent) = (silent_flag.clone(), sent_count.clone());
            tokio::spawn(async move {
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    while let Ok(n) = from_server.read(&mut buffer).await {
                        if n == 0 || to_client.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buffer = [0u8; 4096];
                while let Ok(n) = from_client.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    sent.fetch_add(n, Ordering::SeqCst);
                    if !silent.load(Ordering::SeqCst)
                        && to_server.write_all(&buffer[..n]).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    let url = format!("redis://{addr}");
    (url, silent, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_gone_silent_is_asked_once_not_by_every_check() {
    use std::sync::atomic::Ordering;
    let Some(url) = redis_url() else { return };
    let upstream = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    let (relayed, silent, sent) = silent_relay(upstream).await;
    let limiter = RedisRateLimiter::new(&relayed, &unique_prefix(), 1000, 1000)
        .unwrap()
        .unwrap();
    // Two healthy checks: connected, the script loaded; the second one's bytes are what
    // one check costs.
    limiter.check(1).await;
    let before = sent.load(Ordering::SeqCst);
    limiter.check(1).await;
    let one_check = sent.load(Ordering::SeqCst) - before;
    assert!(one_check > 0, "the relay saw the check");

    silent.store(true, Ordering::SeqCst);
    let before = sent.load(Ordering::SeqCst);
    for _ in 0..10 {
        assert!(
            limiter.check(1).await.allowed,
            "decided locally, never refused"
        );
    }
    let during = sent.load(Ordering::SeqCst) - before;
    assert!(
        during < 3 * one_check,
        "a silent Redis was asked {} times' worth ({during} bytes, {one_check} per check) by 10 checks: after the first timeout the limiter must decide locally until its next reconnect",
        during / one_check
    );
}
