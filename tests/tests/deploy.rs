//! deploy/ agrees with the server and slo.toml: the Kubernetes Deployment's memory limit
//! is the denominator of `ratio(memory)`, its probes and port answer on a live server
//! started with the image's and the ConfigMap's settings, the grace period covers the
//! shutdown, the PrometheusRule is rules.yml, and the image builds every crate. Each
//! test fails when its side drifts (scripts/deploy-check.sh builds and runs the rest).

use std::path::{Path, PathBuf};
use std::time::Duration;

use yaml_rust2::{Yaml, YamlLoader};

use crate::common::{aimate, free_port, send_signal, serve_ready, wait_exit};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn base() -> PathBuf {
    repo().join("deploy/kubernetes/base")
}

fn yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .remove(0)
}

fn text<'a>(value: &'a Yaml, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

fn int(value: &Yaml, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not an integer: {value:?}"))
}

/// The one container of the Deployment.
fn api_container() -> Yaml {
    let deployment = yaml(&base().join("deployment.yaml"));
    let containers = deployment["spec"]["template"]["spec"]["containers"].clone();
    let containers = containers.as_vec().expect("containers").clone();
    assert_eq!(containers.len(), 1, "one container");
    containers[0].clone()
}

/// A Kubernetes memory quantity in bytes (`1Gi`, `512Mi`, `1G`, `1000`).
fn quantity_bytes(quantity: &str) -> u64 {
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<u64>().unwrap() * factor;
        }
    }
    quantity.parse().unwrap()
}

/// The ConfigMap's settings, as the container's environment gets them.
fn config_map() -> Vec<(String, String)> {
    let map = yaml(&base().join("configmap.yaml"));
    map["data"]
        .as_hash()
        .expect("data")
        .iter()
        .map(|(k, v)| (text(k, "key").to_owned(), text(v, "value").to_owned()))
        .collect()
}

/// The `ENV` settings of the Dockerfile's runtime stages.
fn image_env() -> Vec<(String, String)> {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut env = Vec::new();
    // Whether the line before ended an ENV line with a continuation.
    let mut continued = false;
    for line in dockerfile.lines() {
        let line = line.trim();
        let rest = match line.strip_prefix("ENV ") {
            Some(rest) => rest,
            None if continued => line,
            None => continue,
        };
        continued = rest.ends_with('\\');
        for pair in rest.trim_end_matches('\\').split_whitespace() {
            let (key, value) = pair.split_once('=').expect("ENV KEY=VALUE");
            env.push((key.to_owned(), value.to_owned()));
        }
    }
    env
}

#[test]
fn the_memory_limit_is_slo_tomls_memory_limit() {
    let spec = aimate_reports::spec::SloSpec::load(&repo().join("slo.toml")).unwrap();
    let container = api_container();
    let limit = text(&container["resources"]["limits"]["memory"], "limits.memory");
    assert_eq!(
        Some(quantity_bytes(limit)),
        spec.memory_limit_bytes,
        "deployment.yaml limits memory to {limit}; slo.toml's memory_limit (the denominator of ratio(memory)) must say the same"
    );
    // The guide's other resource numbers.
    assert_eq!(
        text(&container["resources"]["requests"]["memory"], "requests"),
        "512Mi"
    );
    assert_eq!(
        text(&container["resources"]["requests"]["cpu"], "requests"),
        "500m"
    );
    assert_eq!(
        text(&container["resources"]["limits"]["cpu"], "limits"),
        "1"
    );
}

#[test]
fn the_image_and_the_config_map_listen_where_the_deployment_probes() {
    let container = api_container();
    let ports = container["ports"].as_vec().unwrap();
    let http = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("http"))
        .expect("a port named http");
    let container_port = int(&http["containerPort"], "containerPort").to_string();
    let image: std::collections::HashMap<_, _> = image_env().into_iter().collect();
    let settings: std::collections::HashMap<_, _> = config_map().into_iter().collect();
    assert_eq!(
        image.get("PORT"),
        Some(&container_port),
        "Dockerfile ENV PORT"
    );
    assert_eq!(
        settings.get("PORT"),
        Some(&container_port),
        "ConfigMap PORT"
    );
    // Every probe targets that port, by its name.
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["port"].as_str(),
            Some("http"),
            "{probe} port"
        );
    }
    let service = yaml(&base().join("service.yaml"));
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some("http")
    );
}

#[test]
fn the_probes_answer_200_on_a_server_started_with_the_images_and_config_maps_settings() {
    let container = api_container();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = aimate(dir.path());
    command.arg("serve");
    // The image's environment, then the ConfigMap's (as Kubernetes layers them), with
    // the port and data directory moved where a test may use them.
    for (key, value) in image_env().into_iter().chain(config_map()) {
        command.env(key, value);
    }
    command
        .env("PORT", port.to_string())
        .env("AIMATE_DATA_DIR", dir.path().join("data"))
        .stdout(std::process::Stdio::null());
    let (mut server, base) = serve_ready(&mut command, port);
    let client = reqwest::blocking::Client::new();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let path = text(&container[probe]["httpGet"]["path"], probe);
        let status = client.get(format!("{base}{path}")).send().unwrap().status();
        assert_eq!(status, 200, "{probe} GET {path}");
    }
    // The guide's probe numbers: path, initialDelaySeconds, periodSeconds.
    for (probe, path, delay, period) in [
        ("livenessProbe", "/health", 30, 10),
        ("readinessProbe", "/api/health", 10, 5),
    ] {
        let spec = &container[probe];
        assert_eq!(spec["httpGet"]["path"].as_str(), Some(path), "{probe}");
        assert_eq!(int(&spec["initialDelaySeconds"], probe), delay, "{probe}");
        assert_eq!(int(&spec["periodSeconds"], probe), period, "{probe}");
    }
    // With the ConfigMap's shutdown delay, readiness turns 503 at SIGTERM while the
    // server still answers, and it then exits 0.
    send_signal(&server, "TERM");
    let readiness = format!("{base}/api/health");
    let started = std::time::Instant::now();
    loop {
        let status = client.get(&readiness).send().unwrap().status();
        if status == 503 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "readiness still {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = wait_exit(&mut server, Duration::from_secs(40)).expect("exits");
    assert!(status.success(), "{status}");
}

#[test]
fn the_grace_period_covers_the_shutdown_delay_and_the_drain() {
    let settings: std::collections::HashMap<_, _> = config_map().into_iter().collect();
    let seconds = |key: &str| {
        aimate_reports::duration::parse(settings.get(key).unwrap_or_else(|| panic!("{key}")))
            .unwrap()
            .as_secs_f64()
    };
    let delay = seconds("AIMATE_SHUTDOWN_DELAY");
    let drain = seconds("AIMATE_DRAIN_TIMEOUT");
    assert!(
        delay >= 5.0,
        "a delay of {delay} s is shorter than endpoint removal takes"
    );
    let deployment = yaml(&base().join("deployment.yaml"));
    let grace = int(
        &deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    ) as f64;
    assert!(
        grace > delay + drain,
        "terminationGracePeriodSeconds {grace} must exceed the shutdown delay {delay} s + drain {drain} s"
    );
}

#[test]
fn the_rollout_and_autoscaling_follow_the_guide() {
    let deployment = yaml(&base().join("deployment.yaml"));
    let rolling = &deployment["spec"]["strategy"]["rollingUpdate"];
    assert_eq!(rolling["maxSurge"].as_str(), Some("25%"));
    assert_eq!(rolling["maxUnavailable"].as_str(), Some("10%"));
    let hpa = yaml(&base().join("hpa.yaml"));
    assert_eq!(hpa["apiVersion"].as_str(), Some("autoscaling/v2"));
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert_eq!(int(&hpa["spec"]["minReplicas"], "min"), 2);
    assert_eq!(int(&hpa["spec"]["maxReplicas"], "max"), 20);
    let cpu = &hpa["spec"]["metrics"][0]["resource"];
    assert_eq!(cpu["name"].as_str(), Some("cpu"));
    assert_eq!(int(&cpu["target"]["averageUtilization"], "cpu"), 70);
    let behavior = &hpa["spec"]["behavior"];
    assert_eq!(
        int(&behavior["scaleUp"]["stabilizationWindowSeconds"], "up"),
        60
    );
    assert_eq!(
        int(&behavior["scaleDown"]["stabilizationWindowSeconds"], "down"),
        300
    );
}

#[test]
fn the_prometheus_rule_carries_exactly_the_committed_rules() {
    let rule = yaml(&base().join("prometheusrule.yaml"));
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    let committed = yaml(&repo().join("dashboards/prometheus/rules.yml"));
    assert!(!committed["groups"].is_badvalue() && committed["groups"].as_vec().is_some());
    assert_eq!(rule["spec"]["groups"], committed["groups"]);
}

#[test]
fn the_kustomization_lists_every_manifest_of_the_base() {
    assert_lists_every_manifest(&base(), &[]);
}

/// `dir`'s kustomization lists every manifest beside it but those in `applied_apart`.
fn assert_lists_every_manifest(dir: &Path, applied_apart: &[&str]) {
    let kustomization = yaml(&dir.join("kustomization.yaml"));
    let mut listed: Vec<String> = kustomization["resources"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|r| text(r, "resource").to_owned())
        .collect();
    let mut present: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.ends_with(".yaml")
                && name != "kustomization.yaml"
                && !applied_apart.contains(&name.as_str())
        })
        .collect();
    listed.sort();
    present.sort();
    assert_eq!(listed, present, "{}", dir.display());
}

#[test]
fn the_image_build_copies_every_workspace_member() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members_line = manifest
        .lines()
        .find(|l| l.starts_with("members"))
        .expect("workspace members");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let members = members_line.split('"').skip(1).step_by(2).chain(["src"]);
    for member in members {
        assert!(
            dockerfile.contains(&format!("COPY {member} {member}")),
            "the Dockerfile's builder does not copy `{member}`: the full build would fail"
        );
    }
}

/// Values Kubernetes accepts for the enum fields the manifests use, by the end of the
/// field's path (`*` any key or index). kubernetes-validate checks types and unknown
/// fields but not these (`completionMode: Indexd` passes it), so a typo here would
/// reach the cluster.
const ENUMS: &[(&[&str], &[&str])] = &[
    (&["imagePullPolicy"], &["Always", "IfNotPresent", "Never"]),
    (&["strategy", "type"], &["Recreate", "RollingUpdate"]),
    (&["whenUnsatisfiable"], &["DoNotSchedule", "ScheduleAnyway"]),
    (&["protocol"], &["TCP", "UDP", "SCTP"]),
    (
        &["seccompProfile", "type"],
        &["RuntimeDefault", "Localhost", "Unconfined"],
    ),
    (&["policyTypes", "*"], &["Ingress", "Egress"]),
    (
        &["metrics", "*", "type"],
        &[
            "Resource",
            "Pods",
            "Object",
            "External",
            "ContainerResource",
        ],
    ),
    (
        &["target", "type"],
        &["Utilization", "Value", "AverageValue"],
    ),
    (&["capabilities", "drop", "*"], &["ALL"]),
    (
        &["spec", "type"],
        &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
    ),
    (
        &["topologyKey"],
        &["topology.kubernetes.io/zone", "kubernetes.io/hostname"],
    ),
    // The distributed load run's Jobs (deploy/kubernetes/load).
    (&["completionMode"], &["Indexed", "NonIndexed"]),
    (
        &["podReplacementPolicy"],
        &["TerminatingOrFailed", "Failed"],
    ),
    (
        &["podFailurePolicy", "rules", "*", "action"],
        &["FailJob", "FailIndex", "Ignore", "Count"],
    ),
    (&["onExitCodes", "operator"], &["In", "NotIn"]),
    (
        &["onPodConditions", "*", "status"],
        &["True", "False", "Unknown"],
    ),
    (&["restartPolicy"], &["Never", "OnFailure", "Always"]),
    (
        &["accessModes", "*"],
        &[
            "ReadWriteOnce",
            "ReadOnlyMany",
            "ReadWriteMany",
            "ReadWriteOncePod",
        ],
    ),
];

fn load_dir() -> PathBuf {
    repo().join("deploy/kubernetes/load")
}

/// Every document of a YAML file.
fn documents(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every (path, string value) of `doc`.
fn leaves(doc: &Yaml, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    match doc {
        Yaml::Hash(map) => {
            for (key, value) in map {
                path.push(key.as_str().unwrap_or("?").to_owned());
                leaves(value, path, out);
                path.pop();
            }
        }
        Yaml::Array(items) => {
            for item in items {
                path.push("*".to_owned());
                leaves(item, path, out);
                path.pop();
            }
        }
        Yaml::String(text) => out.push((path.clone(), text.clone())),
        _ => {}
    }
}

#[test]
fn enum_fields_hold_values_kubernetes_accepts() {
    let mut checked = 0;
    let files = std::fs::read_dir(base())
        .unwrap()
        .chain(std::fs::read_dir(load_dir()).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("yaml"));
    for (path, doc) in
        files.flat_map(|path| documents(&path).into_iter().map(move |d| (path.clone(), d)))
    {
        // A ConfigMap's data is the server's, not Kubernetes' to check.
        if doc["kind"].as_str() == Some("ConfigMap") {
            continue;
        }
        let mut found = Vec::new();
        leaves(&doc, &mut Vec::new(), &mut found);
        for (field, value) in found {
            let matches = |suffix: &[&str]| {
                field.len() >= suffix.len()
                    && field[field.len() - suffix.len()..]
                        .iter()
                        .zip(suffix)
                        .all(|(a, b)| a == b)
            };
            if let Some((_, allowed)) = ENUMS.iter().find(|(suffix, _)| matches(suffix)) {
                assert!(
                    allowed.contains(&value.as_str()),
                    "{}: {} = `{value}`, not one of {allowed:?}",
                    path.display(),
                    field.join(".")
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} enum fields found: is the table stale?"
    );
}

/// The distributed load run's Job: one segment per index, every index at once and never
/// retried, each record on the volume the verdict job merges from.
#[test]
fn the_load_job_runs_one_segment_per_index_and_the_verdict_reads_their_records() {
    let job = yaml(&load_dir().join("job.yaml"));
    let spec = &job["spec"];
    assert_eq!(text(&spec["completionMode"], "completionMode"), "Indexed");
    let completions = int(&spec["completions"], "completions");
    assert_eq!(int(&spec["parallelism"], "parallelism"), completions);
    assert_eq!(
        int(&spec["backoffLimitPerIndex"], "backoffLimitPerIndex"),
        0
    );
    assert_eq!(
        text(&spec["podReplacementPolicy"], "podReplacementPolicy"),
        "Failed"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(text(&pod["restartPolicy"], "restartPolicy"), "Never");
    let generator = &pod["containers"][0];
    let args: Vec<&str> = generator["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| text(a, "arg"))
        .collect();
    assert_eq!(args[0], "load");
    assert!(
        args.contains(&format!("--segments={completions}").as_str()),
        "{args:?}"
    );
    assert!(args.contains(&"--start-at=$(START_AT)"), "{args:?}");
    let out = args
        .iter()
        .find_map(|a| a.strip_prefix("--out="))
        .expect("--out");
    assert!(out.contains("$(JOB_COMPLETION_INDEX)"), "{out}");
    let env: Vec<&str> = generator["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| text(&e["name"], "env name"))
        .collect();
    assert!(env.contains(&"START_AT"), "{env:?}");
    // The tenants' keys are a file from a Secret (never an environment variable): the
    // one `aimate load prepare` writes.
    assert!(
        !env.iter().any(|e| e.contains("KEY") || e.contains("TOKEN")),
        "{env:?}"
    );
    let mount_of = |container: &Yaml, name: &str| -> String {
        container["volumeMounts"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|m| m["name"].as_str() == Some(name))
            .map(|m| text(&m["mountPath"], "mountPath").to_owned())
            .unwrap_or_else(|| panic!("no {name} mount"))
    };
    let mount = |container: &Yaml| mount_of(container, "records");
    let keys = args
        .iter()
        .find_map(|a| a.strip_prefix("--keys="))
        .expect("--keys");
    assert_eq!(keys, format!("{}/keys", mount_of(generator, "keys")));
    let keys_volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("keys"))
        .expect("keys volume");
    assert_eq!(
        text(&keys_volume["secret"]["secretName"], "secretName"),
        "aimate-load-keys"
    );
    let records_dir = mount(generator);
    assert!(
        out.starts_with(&format!("{records_dir}/")),
        "{out} outside {records_dir}"
    );
    let claim = |pod: &Yaml| -> String {
        pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("records"))
            .map(|v| text(&v["persistentVolumeClaim"]["claimName"], "claimName").to_owned())
            .expect("records volume")
    };
    let pvc = yaml(&load_dir().join("records-pvc.yaml"));
    assert_eq!(claim(pod), text(&pvc["metadata"]["name"], "pvc name"));
    assert_eq!(
        text(&pvc["spec"]["accessModes"][0], "accessMode"),
        "ReadWriteMany"
    );

    let verdict = yaml(&load_dir().join("verdict-job.yaml"));
    let verdict_pod = &verdict["spec"]["template"]["spec"];
    assert_eq!(claim(verdict_pod), claim(pod));
    let merge = &verdict_pod["initContainers"][0];
    let merge_args: Vec<&str> = merge["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| text(a, "arg"))
        .collect();
    assert_eq!(&merge_args[..3], ["report", "merge", mount(merge).as_str()]);
    let grade = &verdict_pod["containers"][0];
    let grade_args: Vec<&str> = grade["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| text(a, "arg"))
        .collect();
    assert_eq!(grade_args[0], "report");
    // The grader reads the record the merge wrote.
    let merged = merge_args[merge_args.iter().position(|a| *a == "-o").unwrap() + 1];
    assert_eq!(grade_args[1], merged);

    // The kustomization lists every manifest but the verdict job (applied after).
    assert_lists_every_manifest(&load_dir(), &["verdict-job.yaml"]);
}

/// The drills of chaos/experiments/compose select what deploy/compose.yaml (with
/// compose.chaos.yaml) runs: its project and services, its replica count as the bound,
/// the balancer's published port, and proxies deploy/faults.json creates.
#[test]
fn the_compose_drills_select_what_the_compose_stack_runs() {
    use aimate_chaos::experiment::{Experiment, ProxyLink, TargetKind};
    let compose = yaml(&repo().join("deploy/compose.yaml"));
    let project = text(&compose["name"], "compose name");
    let services = &compose["services"];
    let replicas = int(&services["aimate"]["deploy"]["replicas"], "replicas");
    let published = services["balancer"]["ports"]
        .as_vec()
        .expect("balancer ports")
        .iter()
        .map(|p| text(p, "port").to_owned())
        .collect::<Vec<_>>();
    let faults: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/faults.json")).expect("faults.json"),
    )
    .expect("faults.json is JSON");
    let proxies: Vec<&str> = faults
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    let chaos = yaml(&repo().join("deploy/compose.chaos.yaml"));
    let api_port = text(&chaos["services"]["faults"]["ports"][0], "faults port").to_owned();

    let dir = repo().join("chaos/experiments/compose");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("chaos/experiments/compose")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    for file in files {
        let experiment = Experiment::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let TargetKind::Docker(target) = &experiment.kind else {
            panic!("{}: not a docker target", file.display());
        };
        let name = file.display();
        let service_of = |labels: &std::collections::BTreeMap<String, String>| {
            assert_eq!(labels["com.docker.compose.project"], project, "{name}");
            labels["com.docker.compose.service"].clone()
        };
        assert_eq!(service_of(&target.labels), "aimate", "{name}");
        assert_eq!(
            experiment.instances as i64, replicas,
            "{name}: the bound is the replica count"
        );
        let url = target.url.as_deref().expect("url");
        let port = url.rsplit(':').next().expect("port");
        assert!(
            published.iter().any(|p| p.contains(&format!(":-{port}}}"))),
            "{name}: {url} is not the balancer's published port ({published:?})"
        );
        if let Some(redis) = &target.redis_labels {
            let service = service_of(redis);
            assert!(
                !services[service.as_str()].is_badvalue(),
                "{name}: no service {service}"
            );
        }
        if let Some(api) = &target.proxy_api {
            let port = api.rsplit(':').next().expect("port");
            assert!(
                api_port.contains(&format!(":-{port}}}")),
                "{name}: {api} vs {api_port}"
            );
            for link in [ProxyLink::Database, ProxyLink::Redis] {
                let proxy = target.proxy_name(link);
                assert!(
                    proxies.contains(&proxy.as_str()),
                    "{name}: no proxy {proxy} in faults.json"
                );
            }
        }
    }
}
