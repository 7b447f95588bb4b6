//! The benchmark baseline: the smallest hyper 1 server that answers "hello", served the
//! way aimate is served (hyper-util auto builder, TCP_NODELAY), with none of its work
//! (routing, auth, rate limiting, cache, metrics, logs).
//!
//! Run with: `cargo run --release -p aimate-server --example bare_hyper -- 127.0.0.1:18081`

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;

type Body = http_body_util::Full<Bytes>;

async fn hello(_request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::new(Bytes::from_static(b"hello"))))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let builder = Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
