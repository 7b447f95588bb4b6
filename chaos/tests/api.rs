//! The control API driven with plain HTTP calls, as a Toxiproxy client would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use aimate_chaos::api::{ApiState, router};
use serde_json::{Value, json};
use support::echo_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn api(token: Option<&str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ApiState::new(token.map(str::to_owned), addr));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn ping(addr: &str) -> Duration {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).await.unwrap();
    started.elapsed()
}

#[tokio::test]
async fn toxiproxy_client_flow() {
    use reqwest::Method;
    let base = api(None).await;
    let upstream = echo_server().await;
    let client = reqwest::Client::new();

    let (status, version) = call(&client, Method::GET, format!("{base}/version"), None).await;
    assert_eq!(status, 200);
    assert!(
        version["version"]
            .as_str()
            .unwrap()
            .starts_with("aimate-chaos")
    );

    let (status, proxy) = call(
        &client,
        Method::POST,
        format!("{base}/proxies"),
        Some(json!({"name": "echo", "listen": "127.0.0.1:0", "upstream": upstream})),
    )
    .await;
    assert_eq!(status, 201, "{proxy}");
    assert_eq!(
        (proxy["name"].as_str(), proxy["enabled"].as_bool()),
        (Some("echo"), Some(true))
    );
    let listen = proxy["listen"].as_str().unwrap().to_owned();
    assert!(ping(&listen).await < Duration::from_millis(80));

    let (status, error) = call(
        &client,
        Method::POST,
        format!("{base}/proxies"),
        Some(json!({"name": "echo", "listen": "127.0.0.1:0", "upstream": upstream})),
    )
    .await;
    assert_eq!((status, error["status"].as_u64()), (409, Some(409)));
    assert!(error["error"].as_str().unwrap().contains("exists"));

    // A latency toxic with Toxiproxy's JSON; the name defaults to type_stream.
    let (status, toxic) = call(
        &client,
        Method::POST,
        format!("{base}/proxies/echo/toxics"),
        Some(json!({"type": "latency", "stream": "downstream", "attributes": {"latency": 150}})),
    )
    .await;
    assert_eq!(status, 200, "{toxic}");
    assert_eq!(toxic["name"], "latency_downstream");
    let slowed = ping(&listen).await;
    assert!(
        slowed >= Duration::from_millis(150) && slowed < Duration::from_millis(300),
        "{slowed:?}"
    );

    let (_, listed) = call(&client, Method::GET, format!("{base}/proxies"), None).await;
    assert_eq!(listed["echo"]["toxics"][0]["attributes"]["latency"], 150);

    let (status, updated) = call(
        &client,
        Method::POST,
        format!("{base}/proxies/echo/toxics/latency_downstream"),
        Some(json!({"attributes": {"latency": 20}})),
    )
    .await;
    assert_eq!(
        (status, &updated["attributes"]["latency"]),
        (200, &json!(20))
    );
    let (_, fetched) = call(
        &client,
        Method::GET,
        format!("{base}/proxies/echo/toxics/latency_downstream"),
        None,
    )
    .await;
    assert_eq!(fetched["attributes"]["latency"], 20);

    let (status, _) = call(
        &client,
        Method::DELETE,
        format!("{base}/proxies/echo/toxics/latency_downstream"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert!(ping(&listen).await < Duration::from_millis(80));

    // Disable, then /reset re-enables and clears.
    call(
        &client,
        Method::POST,
        format!("{base}/proxies/echo/toxics"),
        Some(json!({"type": "timeout", "attributes": {"timeout": 0}})),
    )
    .await;
    let (status, proxy) = call(
        &client,
        Method::POST,
        format!("{base}/proxies/echo"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, &proxy["enabled"]), (200, &json!(false)));
    let (status, _) = call(&client, Method::POST, format!("{base}/reset"), None).await;
    assert_eq!(status, 204);
    let (_, proxy) = call(&client, Method::GET, format!("{base}/proxies/echo"), None).await;
    assert_eq!(
        (&proxy["enabled"], &proxy["toxics"]),
        (&json!(true), &json!([]))
    );
    assert!(ping(&listen).await < Duration::from_millis(80));

    // Errors in Toxiproxy's shape.
    for (method, path, body, expected) in [
        (Method::GET, "/proxies/nope", None, 404),
        (Method::GET, "/proxies/echo/toxics/nope", None, 404),
        (
            Method::POST,
            "/proxies/echo/toxics",
            Some(json!({"type": "explode", "attributes": {}})),
            400,
        ),
        (
            Method::POST,
            "/proxies/echo/toxics",
            Some(json!({"type": "latency", "toxicity": 2.0, "attributes": {"latency": 1}})),
            400,
        ),
        (
            Method::POST,
            "/proxies",
            Some(json!({"name": "bad", "listen": "256.0.0.1:1", "upstream": upstream})),
            500,
        ),
    ] {
        let (status, error) = call(&client, method.clone(), format!("{base}{path}"), body).await;
        assert_eq!(status, expected, "{method} {path}: {error}");
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{error}"
        );
    }

    let (status, _) = call(
        &client,
        Method::DELETE,
        format!("{base}/proxies/echo"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert!(
        TcpStream::connect(&listen).await.is_err(),
        "a deleted proxy stops listening"
    );
}

#[tokio::test]
async fn a_configured_token_is_required() {
    let base = api(Some("s3cret")).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/proxies"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .get(format!("{base}/proxies"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .get(format!("{base}/proxies"))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn web_pages_and_foreign_hosts_cannot_drive_the_api() {
    let base = api(None).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let upstream = echo_server().await;
    let client = reqwest::Client::new();
    let create = json!({"name": "evil", "listen": "127.0.0.1:0", "upstream": upstream});

    // A page on another origin (a browser sends its Origin on every POST).
    let response = client
        .post(format!("{base}/proxies"))
        .header("origin", "http://attacker.example")
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // DNS rebinding: the attacker's name resolves to 127.0.0.1, the Host stays theirs.
    let response = client
        .post(format!("{base}/proxies"))
        .header("host", format!("attacker.example:{port}"))
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // A "simple" cross-site form post carries text/plain: refused before it is parsed.
    let response = client
        .post(format!("{base}/proxies"))
        .header("content-type", "text/plain")
        .body(create.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let (status, proxies) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/proxies"),
        None,
    )
    .await;
    assert_eq!((status, proxies), (200, json!({})), "nothing was created");

    // The API's own address, localhost, a same-origin page: all fine.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let response = client
            .get(format!("{base}/proxies"))
            .header("host", host.as_str())
            .header("origin", format!("http://{host}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
    }
}

#[tokio::test]
async fn an_empty_token_is_no_token_and_is_refused_off_loopback() {
    let base = api(Some("  ")).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/proxies"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let exposed: std::net::SocketAddr = "0.0.0.0:0".parse().unwrap();
    let refused = aimate_chaos::api::serve(exposed, Some(String::new()), async {}, |_| {}).await;
    assert!(
        matches!(
            refused,
            Err(aimate_chaos::api::ServeError::ExposedWithoutToken(_))
        ),
        "an empty token off loopback must be refused"
    );
}

#[tokio::test]
async fn a_failed_update_keeps_the_old_proxy() {
    use reqwest::Method;
    let base = api(None).await;
    let upstream = echo_server().await;
    let client = reqwest::Client::new();
    let create = |name: &str| json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream});
    let (_, first) = call(
        &client,
        Method::POST,
        format!("{base}/proxies"),
        Some(create("first")),
    )
    .await;
    let (_, second) = call(
        &client,
        Method::POST,
        format!("{base}/proxies"),
        Some(create("second")),
    )
    .await;
    let (status, _) = call(
        &client,
        Method::POST,
        format!("{base}/proxies/first/toxics"),
        Some(json!({"name": "slow", "type": "latency", "attributes": {"latency": 50}})),
    )
    .await;
    assert_eq!(status, 200);
    // Moving `first` onto `second`'s port cannot work.
    let (status, error) = call(
        &client,
        Method::POST,
        format!("{base}/proxies/first"),
        Some(json!({"listen": second["listen"]})),
    )
    .await;
    assert!(status >= 400, "{status} {error}");
    // `first` is still there, where it was, with its toxic, and still forwards.
    let (status, after) = call(&client, Method::GET, format!("{base}/proxies/first"), None).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["listen"], first["listen"]);
    assert_eq!(after["toxics"][0]["name"], "slow");
    let elapsed = ping(after["listen"].as_str().unwrap()).await;
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    // And a move to a free port does work.
    let (status, moved) = call(
        &client,
        Method::POST,
        format!("{base}/proxies/first"),
        Some(json!({"listen": "127.0.0.1:0"})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_ne!(moved["listen"], first["listen"]);
    assert_eq!(moved["toxics"][0]["name"], "slow");
}
