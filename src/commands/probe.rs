//! `aimate probe`: one GET, exit 0 on a 200 and 1 on anything else, so a container's
//! HEALTHCHECK (or a Kubernetes exec probe) needs neither curl nor a shell in the image.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Instant;

use aimate_server::config::resolve_bind;
use anyhow::anyhow;

use crate::cli::ProbeArgs;

/// Docker's HEALTHCHECK reads 0 as healthy and 1 as unhealthy.
const UNHEALTHY: u8 = 1;

pub fn run(args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let url = probe_url(&args.target, |name| std::env::var(name).ok())?;
    let uri: hyper::Uri = url.parse().map_err(|e| anyhow!("`{url}`: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let answer = runtime.block_on(async { tokio::time::timeout(args.timeout, get(&uri)).await });
    let elapsed = started.elapsed().as_millis();
    match answer {
        Ok(Ok(status)) if status == hyper::StatusCode::OK => {
            println!("{url}: 200 in {elapsed} ms");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(status)) => {
            eprintln!("{url}: {status} in {elapsed} ms");
            Ok(ExitCode::from(UNHEALTHY))
        }
        Ok(Err(error)) => {
            eprintln!("{url}: no answer: {error:#}");
            Ok(ExitCode::from(UNHEALTHY))
        }
        Err(_) => {
            eprintln!("{url}: no answer within {:?}", args.timeout);
            Ok(ExitCode::from(UNHEALTHY))
        }
    }
}

/// One GET on a fresh connection; the status of its answer (the body is not read).
async fn get(uri: &hyper::Uri) -> anyhow::Result<hyper::StatusCode> {
    let host = uri.host().ok_or_else(|| anyhow!("no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    // A bracketed IPv6 literal connects without its brackets.
    let address = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((address, port)).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "aimate-probe")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
    Ok(sender.send_request(request).await?.status())
}

/// `target` as a URL: itself when it has a scheme, else a path on the address the
/// server of this environment listens on.
fn probe_url(target: &str, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    if target.contains("://") {
        let uri: hyper::Uri = target.parse().map_err(|e| anyhow!("`{target}`: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(anyhow!("`{target}`: only http:// can be probed"));
        }
        if uri.host().is_none() {
            return Err(anyhow!("`{target}`: no host"));
        }
        return Ok(target.to_owned());
    }
    if !target.starts_with('/') {
        return Err(anyhow!(
            "`{target}` is neither a URL nor a path starting with /"
        ));
    }
    let bind = match var("AIMATE_BIND").filter(|v| !v.trim().is_empty()) {
        Some(text) => Some(
            text.trim()
                .parse::<SocketAddr>()
                .map_err(|_| anyhow!("AIMATE_BIND=`{text}` is not an address (host:port)"))?,
        ),
        None => None,
    };
    let addr = resolve_bind(bind, &var)?;
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!(
        "http://{}{target}",
        SocketAddr::new(host, addr.port())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_path_is_probed_where_the_server_of_this_environment_listens() {
        assert_eq!(
            probe_url("/api/health", env(&[])).unwrap(),
            "http://127.0.0.1:8080/api/health"
        );
        assert_eq!(
            probe_url("/health", env(&[("PORT", "9000")])).unwrap(),
            "http://127.0.0.1:9000/health"
        );
        assert_eq!(
            probe_url(
                "/health",
                env(&[("PORT", "9000"), ("AIMATE_BIND", "10.1.2.3:81")])
            )
            .unwrap(),
            "http://10.1.2.3:81/health"
        );
        assert_eq!(
            probe_url("/health", env(&[("AIMATE_BIND", "[::]:82")])).unwrap(),
            "http://[::1]:82/health"
        );
    }

    #[test]
    fn a_full_url_is_probed_as_given() {
        assert_eq!(
            probe_url("http://api:8080/health", env(&[("PORT", "1")])).unwrap(),
            "http://api:8080/health"
        );
    }

    #[test]
    fn bad_targets_and_settings_are_named() {
        let error = |target, pairs| probe_url(target, env(pairs)).unwrap_err().to_string();
        assert_eq!(
            error("/health", &[("PORT", "http")]),
            "PORT=`http` is not a port number (1-65535)"
        );
        assert_eq!(
            error("/health", &[("AIMATE_BIND", "localhost")]),
            "AIMATE_BIND=`localhost` is not an address (host:port)"
        );
        assert_eq!(
            error("health", &[]),
            "`health` is neither a URL nor a path starting with /"
        );
        assert_eq!(
            error("https://api/health", &[]),
            "`https://api/health`: only http:// can be probed"
        );
    }
}
