//! JSON values emitted as block-style YAML (Prometheus and Grafana provisioning files),
//! multi-line strings (PromQL) as literal blocks so the files read like hand-written ones.

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

fn to_yaml(value: &serde_json::Value) -> Yaml {
    use serde_json::Value;
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(to_yaml).collect()),
        Value::Object(map) => {
            let mut hash = Hash::new();
            for (key, value) in map {
                hash.insert(Yaml::String(key.clone()), to_yaml(value));
            }
            Yaml::Hash(hash)
        }
    }
}

/// `value` as a YAML document, with a leading comment block.
pub fn document(comment: &str, value: &serde_json::Value) -> String {
    let mut out = String::new();
    for line in comment.lines() {
        out.push_str(if line.is_empty() { "#" } else { "# " });
        out.push_str(line);
        out.push('\n');
    }
    let mut body = String::new();
    let mut emitter = YamlEmitter::new(&mut body);
    emitter.multiline_strings(true);
    // Emitting into a String cannot fail but for a malformed tree, which `to_yaml` never
    // builds; an empty document would then fail the drift and promtool tests loudly.
    if emitter.dump(&to_yaml(value)).is_err() {
        body.clear();
    }
    // The emitter opens with a document marker; the comment header replaces it.
    out.push_str(body.strip_prefix("---\n").unwrap_or(&body));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_reads_as_a_literal_block_and_round_trips() {
        let value = serde_json::json!({
            "groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(rate(x{a=\"b\"}[5m]))\n/\nsum(y)", "for": "5m"}]}]
        });
        let text = document("Generated.", &value);
        assert!(text.starts_with("# Generated.\n"), "{text}");
        assert!(text.contains("expr: |"), "{text}");
        let parsed = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
        assert_eq!(
            parsed[0]["groups"][0]["rules"][0]["expr"].as_str(),
            Some("sum(rate(x{a=\"b\"}[5m]))\n/\nsum(y)")
        );
    }
}
