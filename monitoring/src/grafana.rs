//! The Grafana dashboard (JSON model, schemaVersion 39) and the provisioning files that
//! make a stock Grafana load it: traffic, errors, latency, cache, database pool, memory,
//! load shedding, and per SLO its error budget left and burn rate, thresholds from
//! slo.toml and the guide's alerts.

use aimate_server::metric_catalogue::{
    ACTIVE_REQUESTS, CACHE_REDIS_ERRORS, CACHE_REDIS_LOOKUPS, CACHE_REDIS_UP, CACHE_REQUESTS,
    DB_CONNECTION_MAX, DB_CONNECTIONS, PROCESS_RESIDENT_MEMORY, RATE_LIMITED, SHED_REQUESTS,
    TARGET_INFO,
};
use serde_json::{Value, json};

use crate::promql;
use crate::rules::{
    HIGH_ERROR_RATE, HIGH_MEMORY_SHARE, LOW_CACHE_HIT_RATE, PAGE_BURNS, SLOW_P95_SECONDS,
};
use crate::slo::Slo;

pub const UID: &str = "aimate-service";
const RATE: &str = "$__rate_interval";

/// Every selector of `expr` narrowed to the `$instance` variable.
pub fn with_instance(expr: &str) -> String {
    expr.replace('{', "{instance=~\"$instance\",")
        .replace(",}", "}")
}

/// One query of a panel.
struct Query {
    expr: String,
    legend: String,
}

fn query(expr: impl Into<String>, legend: &str) -> Query {
    Query {
        expr: with_instance(&expr.into()),
        legend: legend.to_owned(),
    }
}

struct Panel {
    title: &'static str,
    kind: &'static str,
    unit: &'static str,
    queries: Vec<Query>,
    /// Threshold lines: (value, color).
    thresholds: Vec<(f64, &'static str)>,
    description: String,
    width: u32,
}

fn panel(title: &'static str, unit: &'static str, queries: Vec<Query>) -> Panel {
    Panel {
        title,
        kind: "timeseries",
        unit,
        queries,
        thresholds: Vec::new(),
        description: String::new(),
        width: 12,
    }
}

impl Panel {
    fn thresholds(mut self, steps: &[(f64, &'static str)]) -> Self {
        self.thresholds = steps.to_vec();
        self
    }

    fn describe(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    fn json(&self, id: u32, x: u32, y: u32) -> Value {
        let mut steps = vec![json!({"color": "green", "value": null})];
        steps.extend(
            self.thresholds
                .iter()
                .map(|(value, color)| json!({"color": color, "value": value})),
        );
        let targets: Vec<Value> = self
            .queries
            .iter()
            .enumerate()
            .map(|(index, q)| {
                json!({
                    "refId": char::from(b'A' + u8::try_from(index).unwrap_or(0)).to_string(),
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "expr": q.expr,
                    "legendFormat": q.legend,
                    "range": true,
                })
            })
            .collect();
        let custom = if self.kind == "timeseries" {
            json!({
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10,
                "showPoints": "never",
                "spanNulls": false,
                "thresholdsStyle": {"mode": if self.thresholds.is_empty() { "off" } else { "line" }},
            })
        } else {
            json!({})
        };
        json!({
            "id": id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": self.width, "x": x, "y": y},
            "targets": targets,
            "fieldConfig": {
                "defaults": {
                    "unit": self.unit,
                    "thresholds": {"mode": "absolute", "steps": steps},
                    "custom": custom,
                },
                "overrides": [],
            },
            "options": if self.kind == "timeseries" {
                json!({
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
                    "tooltip": {"mode": "multi", "sort": "desc"},
                })
            } else {
                json!({"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false}, "colorMode": "value", "graphMode": "none"})
            },
        })
    }
}

/// The rows of the dashboard, each a title and its panels.
fn rows(slos: &[Slo], memory_limit_bytes: Option<u64>) -> Vec<(&'static str, Vec<Panel>)> {
    let p95_slo = slos
        .iter()
        .filter_map(|s| s.latency_le)
        .fold(None, |min: Option<f64>, le| {
            Some(min.map_or(le, |m| m.min(le)))
        });
    let error_slo = slos
        .iter()
        .find(|s| s.latency_le.is_none())
        .map(|s| s.budget);
    let mut traffic = vec![
        panel(
            "Request rate by route",
            "reqps",
            vec![query(
                promql::request_rate("http_route", RATE, ""),
                "{{http_route}}",
            )],
        )
        .describe("API requests per second (health checks and scrapes left out)."),
        panel(
            "Error ratio",
            "percentunit",
            vec![
                query(promql::error_ratio("", RATE), "all instances"),
                query(promql::error_ratio("instance", RATE), "{{instance}}"),
            ],
        )
        .thresholds(
            &error_slo
                .map(|b| vec![(b, "orange"), (HIGH_ERROR_RATE, "red")])
                .unwrap_or_else(|| vec![(HIGH_ERROR_RATE, "red")]),
        )
        .describe(format!(
            "Share of API requests answered 5xx or 429. Orange: the SLO's budget; red: the \
             guide's High Error Rate page ({} %).",
            HIGH_ERROR_RATE * 100.0
        )),
    ];
    traffic.push(
        panel(
            "Errors by route and status",
            "reqps",
            vec![query(
                promql::request_rate(
                    "http_route, http_response_status_code",
                    RATE,
                    &format!("http_response_status_code=~\"{}\"", promql::ERROR_STATUSES),
                ),
                "{{http_route}} {{http_response_status_code}}",
            )],
        )
        .describe("Failed requests per second, by route and status."),
    );
    let latency = vec![
        panel(
            "Latency P50 / P95 / P99",
            "s",
            vec![
                query(promql::latency_quantile(0.5, "", RATE), "P50"),
                query(promql::latency_quantile(0.95, "", RATE), "P95"),
                query(promql::latency_quantile(0.99, "", RATE), "P99"),
            ],
        )
        .thresholds(
            &p95_slo
                .map(|le| vec![(le, "orange"), (SLOW_P95_SECONDS, "red")])
                .unwrap_or_else(|| vec![(SLOW_P95_SECONDS, "red")]),
        )
        .describe(
            "Server-side latency from the request histogram. Orange: the latency SLO's \
             threshold; red: the guide's Slow Response Time (P95 over 1 s).",
        ),
        panel(
            "P95 latency by route",
            "s",
            vec![query(
                promql::latency_quantile(0.95, "http_route", RATE),
                "{{http_route}}",
            )],
        )
        .thresholds(&[(SLOW_P95_SECONDS, "red")])
        .describe("One slow endpoint cannot hide behind a fast average."),
    ];
    let cache_name = CACHE_REQUESTS.name;
    let mut resources = vec![
        panel(
            "Cache hit ratio by cache",
            "percentunit",
            vec![query(
                format!(
                    "sum by (cache) (rate({cache_name}{{result=\"hit\"}}[{RATE}]))\n/\nsum by (cache) (rate({cache_name}{{}}[{RATE}]))"
                ),
                "{{cache}}",
            ),
            query(promql::cache_hit_ratio("", RATE), "response caches")],
        )
        .thresholds(&[(LOW_CACHE_HIT_RATE, "red"), (0.8, "green")])
        .describe(
            "Hits over lookups. Red: the guide's Low Cache Hit Rate (70 %); the Stage 2 \
             target is over 80 %.",
        ),
        panel(
            "Database pool: connections used vs max",
            "short",
            vec![
                query(
                    format!(
                        "sum by (instance) ({}{{state=\"used\"}})",
                        DB_CONNECTIONS.name
                    ),
                    "{{instance}} used",
                ),
                query(
                    format!("sum by (instance) ({}{{}})", DB_CONNECTION_MAX.name),
                    "{{instance}} max",
                ),
            ],
        )
        .describe("The Stage 2 target keeps use under 80 % of the pool."),
    ];
    resources.push(
        panel(
            "Redis cache (fleets with --redis-url)",
            "short",
            vec![
                query(
                    format!("min by (instance) ({}{{}})", CACHE_REDIS_UP.name),
                    "{{instance}} linked (1) or degraded (0)",
                ),
                query(
                    format!(
                        "sum by (result) (rate({}{{}}[{RATE}]))",
                        CACHE_REDIS_LOOKUPS.name
                    ),
                    "L2 {{result}}/s",
                ),
                query(
                    format!("sum(rate({}{{}}[{RATE}]))", CACHE_REDIS_ERRORS.name),
                    "Redis errors/s",
                ),
            ],
        )
        .describe(
            "Whether each instance's cache reaches Redis (0: serving degraded from memory \
             and the database, see AimateCacheDegraded), L1 misses found or not in Redis, \
             and Redis calls that failed or took over 50 ms. Empty without --redis-url.",
        ),
    );
    let memory_expr = format!(
        "{}{{}} and on (instance, job) {}{{service_name=\"aimate\"}}",
        PROCESS_RESIDENT_MEMORY.name, TARGET_INFO.name
    );
    resources.push(
        panel(
            "Memory (resident)",
            "bytes",
            vec![query(memory_expr, "{{instance}}")],
        )
        .thresholds(
            &memory_limit_bytes
                .map(|limit| vec![(limit as f64 * HIGH_MEMORY_SHARE, "red")])
                .unwrap_or_default(),
        )
        .describe("Red: the guide's High Memory Usage (85 % of the memory limit in slo.toml)."),
    );
    resources.push(
        panel(
            "In flight, shed and rate-limited",
            "short",
            vec![
                query(format!("sum({}{{}})", ACTIVE_REQUESTS.name), "in flight"),
                query(
                    format!("sum(rate({}{{}}[{RATE}]))", SHED_REQUESTS.name),
                    "shed (503/s)",
                ),
                query(
                    format!("sum(rate({}{{}}[{RATE}]))", RATE_LIMITED.name),
                    "rate-limited (429/s)",
                ),
            ],
        )
        .describe("Requests in flight now; requests turned away per second."),
    );
    let mut slo_panels = Vec::new();
    for slo in slos {
        slo_panels.push(Panel {
            kind: "stat",
            width: 6,
            ..panel(
                "Error budget left (30 days)",
                "percentunit",
                vec![Query {
                    expr: format!("1 - (\n{}\n) / {}", slo.bad_ratio("", "30d"), slo.budget),
                    legend: slo.text.clone(),
                }],
            )
            .thresholds(&[(0.0, "red"), (0.25, "orange"), (0.5, "green")])
            .describe(format!(
                "`{}`: the share of its budget ({} % {}) not yet spent over 30 days.",
                slo.text,
                slo.budget * 100.0,
                slo.bad_events()
            ))
        });
        let page = &PAGE_BURNS[0];
        slo_panels.push(Panel {
            width: 18,
            ..panel(
                "Burn rate",
                "x",
                vec![
                    Query {
                        expr: format!("{} / {}", slo.ratio_rule(page.long), slo.budget),
                        legend: format!("{} over {}", slo.text, page.long),
                    },
                    Query {
                        expr: format!("{} / {}", slo.ratio_rule(page.short), slo.budget),
                        legend: format!("{} over {}", slo.text, page.short),
                    },
                ],
            )
            .thresholds(&[
                (1.0, "orange"),
                (PAGE_BURNS[1].factor, "red"),
                (page.factor, "dark-red"),
            ])
            .describe(format!(
                "How many times faster than allowed `{}` spends its budget (1 = exactly the \
                 budget over 30 days). It pages at {}× over 1 h and 5 m.",
                slo.text, page.factor
            ))
        });
    }
    vec![
        ("Traffic and errors", traffic),
        ("Latency", latency),
        ("Cache, database, process", resources),
        ("SLOs (from slo.toml)", slo_panels),
    ]
}

/// grafana/aimate-service.json.
pub fn dashboard(slos: &[Slo], memory_limit_bytes: Option<u64>) -> String {
    let mut panels = Vec::new();
    let (mut id, mut y) = (1, 0);
    for (title, row) in rows(slos, memory_limit_bytes) {
        panels.push(json!({
            "id": id, "type": "row", "title": title, "collapsed": false,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": [],
        }));
        id += 1;
        y += 1;
        let mut x = 0;
        for panel in row {
            if x + panel.width > 24 {
                x = 0;
                y += 8;
            }
            panels.push(panel.json(id, x, y));
            id += 1;
            x += panel.width;
        }
        y += 8;
    }
    let instances = format!(
        "label_values({}{{service_name=\"aimate\"}}, instance)",
        TARGET_INFO.name
    );
    let value = json!({
        "uid": UID,
        "title": "AI Mate service",
        "description": "Generated by `aimate dashboards generate` from slo.toml and the server's metric catalogue.",
        "tags": ["aimate", "slo"],
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "utc",
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": true, "hide": true, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0},
            {
                "name": "instance", "label": "Instance", "type": "query",
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "query": {"query": instances, "refId": "instances"},
                "definition": instances,
                "includeAll": true, "multi": true, "allValue": ".*",
                "current": {"text": "All", "value": "$__all"},
                "refresh": 2, "sort": 1, "hide": 0,
            },
        ]},
        "panels": panels,
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// Every query of the dashboard, as Prometheus must accept it (variables filled in).
pub fn queries(dashboard_json: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(dashboard_json) else {
        return Vec::new();
    };
    value["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .map(|e| e.replace("$instance", ".*").replace(RATE, "1m"))
        .collect()
}

/// A provisioned Prometheus data source at `url`, with the uid the dashboard's
/// `$datasource` variable defaults to.
pub fn datasource(url: &str) -> serde_json::Value {
    json!({
        "apiVersion": 1,
        "datasources": [{
            "name": "Prometheus", "type": "prometheus", "uid": "prometheus",
            "access": "proxy", "url": url, "isDefault": true,
        }],
    })
}

/// A file provider that loads the dashboard JSON found at `path` into an "AI Mate" folder.
pub fn dashboard_provider(path: &str) -> serde_json::Value {
    json!({
        "apiVersion": 1,
        "providers": [{
            "name": "aimate", "folder": "AI Mate", "type": "file",
            "disableDeletion": true, "allowUiUpdates": false,
            "options": {"path": path, "foldersFromFilesStructure": false},
        }],
    })
}

/// grafana/provisioning/datasources/aimate.yaml.
pub fn datasource_provisioning() -> String {
    crate::yaml::document(
        "A Prometheus data source for the AI Mate dashboard; point `url` at yours.",
        &datasource("http://127.0.0.1:9090"),
    )
}

/// grafana/provisioning/dashboards/aimate.yaml: loads the JSON next to the
/// provisioning directory (start Grafana with GF_PATHS_PROVISIONING pointing there).
pub fn dashboard_provisioning() -> String {
    crate::yaml::document(
        "Loads dashboards/grafana/*.json into an \"AI Mate\" folder. Start Grafana with\n\
         GF_PATHS_PROVISIONING=<checkout>/dashboards/grafana/provisioning.",
        &dashboard_provider("${GF_PATHS_PROVISIONING}/.."),
    )
}
