//! The deployment files under `deploy/` against the code they deploy, so that they cannot
//! drift from it: every configuration they carry loads, every `GATEWAY_*` variable they set is
//! a field the gateway reads, the probes they point at answer, the port they expose is the one
//! the gateway listens on, and every stop timeout is longer than the gateway's shutdown grace.
//! (No container runtime or cluster runs here; the files are checked as data.)

mod common;

use std::path::{Path, PathBuf};

use common::{Db, TestApp};
use gateway::config::Config;
use serde::Deserialize;
use serde_json::Value;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The Kubernetes manifests, one JSON value per YAML document.
fn manifests() -> Vec<Value> {
    let text = read("kubernetes/gateway.yaml");
    yaml_serde::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("a YAML document"))
        .collect()
}

fn kind<'a>(manifests: &'a [Value], kind: &str) -> &'a Value {
    manifests
        .iter()
        .find(|m| m["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// A configuration file loads as the gateway loads it (and passes its checks).
fn load_toml(name: &str, text: &str) -> Config {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, text).expect("write");
    Config::load(Some(&file)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Does `GATEWAY_A__B` name a field `a.b` of the configuration (as figment reads it)?
fn is_config_field(variable: &str) -> bool {
    let Some(path) = variable.strip_prefix("GATEWAY_") else {
        return false;
    };
    if ["CONFIG", "PROFILES_DIR", "MAPPINGS_DIR"].contains(&path) {
        return true; // read by the command line, not the configuration
    }
    let fields = serde_json::to_value(Config::default()).expect("config as JSON");
    let mut at = &fields;
    for key in path.split("__") {
        match at.get(key.to_lowercase()) {
            Some(field) => at = field,
            None => return false,
        }
    }
    true
}

/// Every `GATEWAY_*` name in a text.
fn variables(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("GATEWAY_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        found.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    found
}

#[test]
fn every_configuration_in_deploy_loads() {
    let example = load_toml("gateway.example.toml", &read("gateway.example.toml"));
    let manifests = manifests();
    let config_map = kind(&manifests, "ConfigMap");
    let toml = config_map["data"]["gateway.toml"]
        .as_str()
        .expect("gateway.toml in the ConfigMap");
    let cluster = load_toml("the ConfigMap's gateway.toml", toml);
    assert!(
        cluster.auth.enabled(),
        "beyond loopback the gateway needs authentication"
    );
    assert_eq!(
        serde_json::to_value(&cluster.limits).expect("limits"),
        serde_json::to_value(&example.limits).expect("limits"),
        "the ConfigMap shows the default limits, as the example does"
    );
}

#[test]
fn every_gateway_variable_the_deploy_files_set_is_read() {
    let mut texts = vec![
        ("Dockerfile", read("Dockerfile")),
        ("compose.yaml", read("compose.yaml")),
        ("kubernetes/gateway.yaml", read("kubernetes/gateway.yaml")),
        (
            "systemd/sosku-gateway.service",
            read("systemd/sosku-gateway.service"),
        ),
    ];
    texts.push(("gateway.example.toml", read("gateway.example.toml")));
    let mut checked = 0;
    for (file, text) in &texts {
        for variable in variables(text) {
            assert!(
                is_config_field(&variable),
                "{file}: {variable} is not a configuration field"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} variables found");
    assert!(
        !is_config_field("GATEWAY_LIMITS__BODY_BYTE"),
        "a typo is caught"
    );
    assert!(!is_config_field("GATEWAY_LISTEN_ON"), "a typo is caught");
}

#[test]
fn stop_timeouts_outlast_the_shutdown_grace() {
    let grace = Config::default().limits.shutdown_grace_secs;
    let manifests = manifests();
    let deployment = kind(&manifests, "Deployment");
    let kubernetes = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    let compose: Value = yaml_serde::from_str(&read("compose.yaml")).expect("compose.yaml is YAML");
    let compose_grace = compose["services"]["gateway"]["stop_grace_period"]
        .as_str()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse::<u64>().ok())
        .expect("stop_grace_period in seconds");
    let unit = read("systemd/sosku-gateway.service");
    let systemd = unit
        .lines()
        .find_map(|line| line.strip_prefix("TimeoutStopSec="))
        .and_then(|s| s.parse::<u64>().ok())
        .expect("TimeoutStopSec");
    for (what, seconds) in [
        ("Kubernetes", kubernetes),
        ("compose", compose_grace),
        ("systemd", systemd),
    ] {
        assert!(
            seconds > grace,
            "{what}: {seconds} s is not longer than {grace} s"
        );
    }
}

#[test]
fn the_container_port_is_where_the_gateway_listens() {
    let manifests = manifests();
    let toml = kind(&manifests, "ConfigMap")["data"]["gateway.toml"]
        .as_str()
        .expect("gateway.toml")
        .to_owned();
    let listen = load_toml("ConfigMap", &toml).listen;
    let container = &kind(&manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["ports"][0]["containerPort"].as_u64(),
        Some(u64::from(listen.port()))
    );
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains(&format!("EXPOSE {}", listen.port()))
            && dockerfile.contains(&format!("GATEWAY_LISTEN=0.0.0.0:{}", listen.port())),
        "the image exposes and listens on {}",
        listen.port()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_answer() {
    let manifests = manifests();
    let container = &kind(&manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let app = TestApp::start(Db::Sqlite)
        .await
        .expect("SQLite is always there");
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = container[probe]["httpGet"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{probe} path"));
        let (status, _) = app.get(path).await;
        assert_eq!(status, 200, "{probe} {path}");
    }
    app.stop().await;
}

/// The image's build stage runs `deploy/build-release.sh`, which exists, is executable and,
/// like every other script under `deploy/`, is valid shell (`bash -n`): the image's build
/// cannot be run here, so its script is checked as far as it can be without one.
#[test]
fn the_image_builds_with_a_script_that_parses() {
    let dockerfile = read("Dockerfile");
    let run = dockerfile
        .lines()
        .find(|line| line.starts_with("RUN ") && line.contains("deploy/build-release.sh"))
        .expect("the build stage runs deploy/build-release.sh");
    assert!(
        run.contains("PGO=$PGO") && dockerfile.contains("ARG PGO=1"),
        "the build argument PGO reaches the script, and is on by default: {run}"
    );
    let mut scripts = Vec::new();
    for dir in [deploy(""), deploy("bench")] {
        for entry in std::fs::read_dir(&dir).expect("deploy dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|ext| ext == "sh") {
                scripts.push(path);
            }
        }
    }
    assert!(
        scripts.iter().any(|s| s.ends_with("build-release.sh"))
            && scripts.iter().any(|s| s.ends_with("pgo-build.sh")),
        "the build scripts are there: {scripts:?}"
    );
    for script in &scripts {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(script).expect("metadata").permissions(),
        );
        assert!(mode & 0o111 != 0, "{} is executable", script.display());
        let parsed = std::process::Command::new("bash")
            .arg("-n")
            .arg(script)
            .output()
            .expect("bash runs");
        assert!(
            parsed.status.success(),
            "{} does not parse: {}",
            script.display(),
            String::from_utf8_lossy(&parsed.stderr)
        );
    }
}
