//! `GET /metrics`: every proxy's traffic in Prometheus' text format. Bytes use
//! Toxiproxy's own series (`toxiproxy_proxy_received_bytes_total` and
//! `toxiproxy_proxy_sent_bytes_total`, labelled `direction`, `proxy`, `listener`,
//! `upstream`), so dashboards built for Toxiproxy read them; connections and active
//! toxics, which Toxiproxy does not export, are `aimate_proxy_*`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::proxy::Proxy;
use crate::toxic::{Stream, Toxic};

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

const FAMILIES: [Family; 5] = [
    Family {
        name: "toxiproxy_proxy_received_bytes_total",
        kind: "counter",
        help: "Bytes read from the sending side of a proxy link, per direction.",
    },
    Family {
        name: "toxiproxy_proxy_sent_bytes_total",
        kind: "counter",
        help: "Bytes written on to the receiving side of a proxy link, after the toxics.",
    },
    Family {
        name: "aimate_proxy_connections_total",
        kind: "counter",
        help: "Client connections a proxy accepted.",
    },
    Family {
        name: "aimate_proxy_connections_open",
        kind: "gauge",
        help: "Client connections a proxy holds open now.",
    },
    Family {
        name: "aimate_proxy_toxic_active",
        kind: "gauge",
        help: "1 for each toxic set on a proxy, labelled with its name, type and stream.",
    },
];

/// The exposition of `proxies`, sorted by name.
pub fn render<'a>(proxies: impl IntoIterator<Item = &'a Proxy>) -> String {
    let proxies: Vec<&Proxy> = proxies.into_iter().collect();
    let mut out = String::new();
    for family in &FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for proxy in &proxies {
            let labels = format!(
                "proxy=\"{}\",listener=\"{}\",upstream=\"{}\"",
                escaped(&proxy.name),
                proxy.listen_addr(),
                escaped(&proxy.upstream)
            );
            let counters = proxy.counters();
            match family.name {
                "toxiproxy_proxy_received_bytes_total" | "toxiproxy_proxy_sent_bytes_total" => {
                    let values = if family.name.contains("received") {
                        &counters.received
                    } else {
                        &counters.sent
                    };
                    for stream in [Stream::Upstream, Stream::Downstream] {
                        let _ = writeln!(
                            out,
                            "{}{{direction=\"{}\",{labels}}} {}",
                            family.name,
                            stream.name(),
                            values[stream as usize].load(Ordering::Relaxed)
                        );
                    }
                }
                "aimate_proxy_connections_total" => {
                    let value = counters.connections_total.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{}{{{labels}}} {value}", family.name);
                }
                "aimate_proxy_connections_open" => {
                    let value = counters.connections_open.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{}{{{labels}}} {value}", family.name);
                }
                _ => {
                    for toxic in proxy.toxics() {
                        let _ = writeln!(
                            out,
                            "{}{{{labels},toxic=\"{}\",type=\"{}\",stream=\"{}\"}} 1",
                            family.name,
                            escaped(&toxic.name),
                            Toxic::type_name(&toxic.kind),
                            toxic.stream.name()
                        );
                    }
                }
            }
        }
    }
    out
}
