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
    let refused =
        aimate_chaos::api::serve(exposed, Some(String::new()), Vec::new(), async {}, |_| {}).await;
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

/// A free loopback port, for proxies whose listen address a test names.
fn free_addr() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn populate_creates_keeps_and_replaces_proxies_in_one_call() {
    use reqwest::Method;
    let base = api(None).await;
    let upstream = echo_server().await;
    let other_upstream = echo_server().await;
    let client = reqwest::Client::new();
    let (a, b) = (free_addr(), free_addr());

    let (status, body) = call(
        &client,
        Method::POST,
        format!("{base}/populate"),
        Some(json!([
            {"name": "a", "listen": a, "upstream": upstream},
            {"name": "b", "listen": b, "upstream": upstream, "enabled": false},
        ])),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let listed = body["proxies"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["enabled"], false);
    assert!(
        ping(&a).await < Duration::from_millis(100),
        "a carries traffic"
    );

    // A toxic on `a`, then populate again: `a` unchanged keeps it, `b` moves upstream.
    let (status, _) = call(
        &client,
        Method::POST,
        format!("{base}/proxies/a/toxics"),
        Some(json!({"type": "latency", "attributes": {"latency": 150}})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &client,
        Method::POST,
        format!("{base}/populate"),
        Some(json!([
            {"name": "a", "listen": a, "upstream": upstream},
            {"name": "b", "listen": b, "upstream": other_upstream},
        ])),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["proxies"][0]["toxics"][0]["type"], "latency");
    assert_eq!(body["proxies"][1]["upstream"], other_upstream.as_str());
    assert_eq!(body["proxies"][1]["enabled"], true);
    assert!(
        ping(&a).await >= Duration::from_millis(140),
        "a kept its toxic"
    );
    assert!(
        ping(&b).await < Duration::from_millis(100),
        "b was replaced and enabled"
    );

    // Checked before anything changes: a missing upstream is 400 and creates nothing.
    let (status, body) = call(
        &client,
        Method::POST,
        format!("{base}/populate"),
        Some(json!([
            {"name": "c", "listen": free_addr(), "upstream": upstream},
            {"name": "d", "listen": free_addr()},
        ])),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "missing required field: upstream at proxy 2");
    assert_eq!(body["status"], 400);
    let (_, all) = call(&client, Method::GET, format!("{base}/proxies?"), None).await;
    assert_eq!(
        all.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a", "b"]
    );
    let (status, body) = call(
        &client,
        Method::POST,
        format!("{base}/populate"),
        Some(json!({"name": "not a list"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("bad request body")
    );
}

#[tokio::test]
async fn errors_carry_toxiproxys_statuses_and_bodies() {
    use reqwest::Method;
    let base = api(None).await;
    let upstream = echo_server().await;
    let client = reqwest::Client::new();
    let create = json!({"name": "p", "listen": "127.0.0.1:0", "upstream": upstream});
    let (status, _) = call(
        &client,
        Method::POST,
        format!("{base}/proxies"),
        Some(create.clone()),
    )
    .await;
    assert_eq!(status, 201);
    for (method, path, body, expected, error) in [
        (
            Method::POST,
            "/proxies",
            Some(create),
            409,
            "proxy already exists",
        ),
        (Method::GET, "/proxies/nope", None, 404, "proxy not found"),
        (
            Method::DELETE,
            "/proxies/nope",
            None,
            404,
            "proxy not found",
        ),
        (
            Method::GET,
            "/proxies/p/toxics/nope",
            None,
            404,
            "toxic not found",
        ),
        (
            Method::DELETE,
            "/proxies/p/toxics/nope",
            None,
            404,
            "toxic not found",
        ),
    ] {
        let (status, body) = call(&client, method, format!("{base}{path}"), body).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert_eq!(body["error"], error, "{path}");
        assert_eq!(body["status"], expected, "{path}");
    }
    let toxic = json!({"name": "t", "type": "latency", "attributes": {"latency": 1}});
    let toxics = format!("{base}/proxies/p/toxics");
    assert_eq!(
        call(&client, Method::POST, toxics.clone(), Some(toxic.clone()))
            .await
            .0,
        200
    );
    let (status, body) = call(&client, Method::POST, toxics.clone(), Some(toxic)).await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (409, Some(409)),
        "{body}"
    );
    let (status, body) = call(
        &client,
        Method::POST,
        toxics,
        Some(json!({"type": "explode", "attributes": {}})),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (400, Some(400)),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_count_bytes_connections_and_toxics_per_proxy() {
    use reqwest::Method;
    let base = api(None).await;
    let upstream = echo_server().await;
    let client = reqwest::Client::new();
    let (_, proxy) = call(
        &client,
        Method::POST,
        format!("{base}/proxies"),
        Some(json!({"name": "echo", "listen": "127.0.0.1:0", "upstream": upstream})),
    )
    .await;
    let listen = proxy["listen"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &client,
        Method::POST,
        format!("{base}/proxies/echo/toxics"),
        Some(json!({"name": "slow", "type": "latency", "stream": "upstream", "attributes": {"latency": 1}})),
    )
    .await;
    assert_eq!(status, 200);
    // Three connections, one still open, 4 bytes each way on each.
    for _ in 0..2 {
        ping(&listen).await;
    }
    let mut open = TcpStream::connect(&listen).await.unwrap();
    open.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    open.read_exact(&mut back).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    let labels = format!("proxy=\"echo\",listener=\"{listen}\",upstream=\"{upstream}\"");
    for (series, value) in [
        (
            format!("toxiproxy_proxy_received_bytes_total{{direction=\"upstream\",{labels}}}"),
            "12",
        ),
        (
            format!("toxiproxy_proxy_sent_bytes_total{{direction=\"upstream\",{labels}}}"),
            "12",
        ),
        (
            format!("toxiproxy_proxy_received_bytes_total{{direction=\"downstream\",{labels}}}"),
            "12",
        ),
        (
            format!("toxiproxy_proxy_sent_bytes_total{{direction=\"downstream\",{labels}}}"),
            "12",
        ),
        (format!("aimate_proxy_connections_total{{{labels}}}"), "3"),
        (format!("aimate_proxy_connections_open{{{labels}}}"), "1"),
        (
            format!(
                "aimate_proxy_toxic_active{{{labels},toxic=\"slow\",type=\"latency\",stream=\"upstream\"}}"
            ),
            "1",
        ),
    ] {
        let line = format!("{series} {value}");
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    for family in [
        "toxiproxy_proxy_received_bytes_total counter",
        "aimate_proxy_connections_open gauge",
    ] {
        assert!(text.contains(&format!("# TYPE {family}")), "{text}");
    }
}

#[tokio::test]
async fn a_config_file_creates_the_proxies_and_version_needs_no_token() {
    let upstream = echo_server().await;
    let listen = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faults.json");
    std::fs::write(
        &config,
        json!([{"name": "database", "listen": listen, "upstream": upstream}]).to_string(),
    )
    .unwrap();
    let proxies = aimate_chaos::api::read_config(&config).unwrap();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(aimate_chaos::api::serve(
        "127.0.0.1:0".parse().unwrap(),
        Some("sekrit".into()),
        proxies,
        std::future::pending(),
        move |addr| {
            let _ = bound_tx.send(addr);
        },
    ));
    let base = format!("http://{}", bound_rx.await.unwrap());
    let client = reqwest::Client::new();
    let get = |path: &str, token: Option<&str>| {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/version", None).await.unwrap().status(), 200);
    assert_eq!(get("/proxies", None).await.unwrap().status(), 401);
    let listed: Value = get("/proxies", Some("sekrit"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["database"]["upstream"], upstream.as_str());
    assert!(
        ping(&listen).await < Duration::from_secs(1),
        "the proxy forwards"
    );

    std::fs::write(
        &config,
        r#"[{"name": "database", "listen": "", "upstream": "x:1"}]"#,
    )
    .unwrap();
    let error = aimate_chaos::api::read_config(&config)
        .unwrap_err()
        .to_string();
    assert!(error.contains("proxy 1 has no listen"), "{error}");
}
