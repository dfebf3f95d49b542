//! The container demo, as far as it can be run without a container engine:
//! `docker/compose.yaml` is read, and the commands its containers run (the
//! binaries with its arguments and environment) are run here, with the
//! compose network's names (`openstack-sim`, `postgres`) and ports replaced
//! by loopback ones and the shared volume by a folder. The demo must answer
//! as its header says it does.

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{databases::TestDatabase, helpers::free_port};

const COMPOSE: &str = include_str!("../../docker/compose.yaml");
const DOCKERFILE: &str = include_str!("../../Dockerfile");

/// `${VAR:-default}` as compose reads it with `VAR` unset.
fn interpolate(value: &str) -> String {
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
        Some(inner) => inner.split_once(":-").map_or("", |(_, d)| d).to_owned(),
        None => value.to_owned(),
    }
}

/// A service's environment, interpolated.
fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|env| {
            env.iter()
                .map(|(k, v)| (k.clone(), interpolate(v.as_str().unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default()
}

/// The `ENV` settings of the Dockerfile's final image.
fn image_environment() -> BTreeMap<String, String> {
    let env = DOCKERFILE
        .split("\nENV ")
        .nth(1)
        .expect("an ENV instruction");
    let mut lines = Vec::new();
    for line in env.lines() {
        lines.push(line.trim().trim_end_matches('\\').trim().to_owned());
        if !line.trim_end().ends_with('\\') {
            break;
        }
    }
    lines
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The `openstack-sim` binary, built beside the gateway's by the
/// workspace's test command (the simulator's own tests need it).
fn simulator_binary() -> std::path::PathBuf {
    let path =
        std::path::Path::new(env!("CARGO_BIN_EXE_backup-gateway")).with_file_name("openstack-sim");
    assert!(
        path.exists(),
        "no {}: run the workspace's tests (`cargo nextest run --workspace`), which build it",
        path.display()
    );
    path
}

/// Kills a process when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_demo_answers_when_its_containers_commands_run() {
    // Arrange: the compose file, as compose reads it.
    let compose: Value = yaml_serde::from_str(COMPOSE).expect("docker/compose.yaml is YAML");
    let services = &compose["services"];
    let sim = &services["openstack-sim"];
    let gateway = &services["gateway"];
    assert!(services.get("postgres").is_some(), "no PostgreSQL service");
    for dependency in ["postgres", "openstack-sim"] {
        assert_eq!(
            gateway["depends_on"][dependency]["condition"], "service_healthy",
            "the gateway starts before {dependency} is ready"
        );
    }
    let gateway_env = environment(gateway);
    let clouds_in_gateway = gateway_env["OS_CLIENT_CONFIG_FILE"].clone();
    let sim_args: Vec<String> = sim["command"]
        .as_array()
        .expect("the simulator's command")
        .iter()
        .map(|a| a.as_str().expect("text").to_owned())
        .collect();
    let clouds_out = sim_args
        .iter()
        .skip_while(|a| *a != "--clouds-yaml-out")
        .nth(1)
        .expect("--clouds-yaml-out")
        .clone();
    assert_eq!(
        clouds_out, clouds_in_gateway,
        "the gateway reads the clouds.yaml the simulator writes"
    );
    assert!(DOCKERFILE.contains("HEALTHCHECK"), "no HEALTHCHECK");
    assert!(
        DOCKERFILE.contains("\"healthcheck\"]"),
        "HEALTHCHECK is not the subcommand"
    );
    assert!(
        DOCKERFILE.contains("\nUSER gateway"),
        "the image runs as root"
    );

    // The containers' commands, on loopback.
    let dir = tempfile::tempdir().expect("dir");
    let clouds = dir.path().join("clouds.yaml");
    let (keystone, cinder, listen) = (free_port(), free_port(), free_port());
    let sim_args: Vec<String> = sim_args
        .iter()
        .map(|a| match a.as_str() {
            "0.0.0.0:5000" => format!("127.0.0.1:{keystone}"),
            "0.0.0.0:8776" => format!("127.0.0.1:{cinder}"),
            "openstack-sim" => "127.0.0.1".to_owned(),
            a if a == clouds_out => clouds.display().to_string(),
            a => a.to_owned(),
        })
        .collect();
    let _sim = Running(
        Command::new(simulator_binary())
            .args(&sim_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the simulator starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !clouds.exists() {
        assert!(
            Instant::now() < deadline,
            "the simulator wrote no clouds.yaml"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = TestDatabase::postgres().await;
    let mut env = image_environment();
    // The image's settings file, as the Dockerfile copies it.
    let image_config = env
        .get("BACKUP_GATEWAY_CONFIG")
        .expect("the image names its settings file")
        .clone();
    assert!(
        DOCKERFILE.contains(&format!("COPY docker/gateway.toml {image_config}")),
        "the image's settings file is not docker/gateway.toml"
    );
    let settings: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/gateway.toml"))
            .expect("docker/gateway.toml")
            .parse()
            .expect("TOML");
    assert_eq!(settings["listen"].as_str(), Some("0.0.0.0:8080"));
    env.insert(
        "BACKUP_GATEWAY_CONFIG".into(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/docker/gateway.toml").into(),
    );
    env.extend(gateway_env);
    assert!(env["BACKUP_GATEWAY_DATABASE_URL"].starts_with("postgres://"));
    env.insert("BACKUP_GATEWAY_DATABASE_URL".into(), db.url().to_owned());
    env.insert("OS_CLIENT_CONFIG_FILE".into(), clouds.display().to_string());
    env.insert(
        "BACKUP_GATEWAY_LISTEN".into(),
        format!("127.0.0.1:{listen}"),
    );
    let run = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_backup-gateway"));
        for (key, _) in std::env::vars() {
            if key.starts_with("BACKUP_GATEWAY_") {
                command.env_remove(key);
            }
        }
        command.args(args).envs(&env).current_dir(dir.path());
        command
    };
    let _gateway = Running(
        run(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gateway starts"),
    );

    // Act: as the compose file's header says, a token and a listing.
    let token = run(&["token", "--for", "tenant-a"])
        .output()
        .expect("a token");
    let token = String::from_utf8(token.stdout)
        .expect("text")
        .trim()
        .to_owned();
    let address = format!("http://127.0.0.1:{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let healthy = loop {
        let health = run(&["healthcheck"]).output().expect("healthcheck runs");
        if health.status.success() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let snapshots: Value = reqwest::Client::new()
        .get(format!("{address}/snapshots"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");

    // Assert
    assert!(healthy, "the image's HEALTHCHECK never passed");
    assert!(
        snapshots["snapshots"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{snapshots}"
    );
}

/// The Dockerfile's dependency layer, replayed in a folder: the files its
/// first `COPY` lines take, and the empty targets its `RUN` makes before
/// `cargo build`. Cargo must load the workspace from them alone, as that
/// build does first (a workspace member whose manifest is not copied
/// stops the image's build there).
#[test]
fn the_dockerfiles_dependency_layer_holds_every_workspace_manifest() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let layer = tempfile::tempdir().expect("temp dir");
    let stage: Vec<&str> = DOCKERFILE
        .lines()
        .skip_while(|l| !l.starts_with("FROM "))
        .take_while(|l| !l.starts_with("COPY . ."))
        .collect();
    let mut copied = 0;
    for line in &stage {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        let parts: Vec<&str> = args.split_whitespace().collect();
        let (sources, target) = parts.split_at(parts.len() - 1);
        for source in sources {
            let to = if target[0].ends_with('/') {
                layer.path().join(target[0]).join(source)
            } else {
                layer.path().join(target[0])
            };
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::fs::copy(root.join(source), &to).expect("copy");
            copied += 1;
        }
    }
    let run = stage
        .join("\n")
        .split("\nRUN ")
        .nth(1)
        .expect("a RUN in the dependency layer")
        .replace("\\\n", " ");
    let commands: Vec<&str> = run
        .split("&&")
        .map(str::trim)
        .take_while(|c| !c.starts_with("cargo build"))
        .collect();
    let made = Command::new("sh")
        .arg("-c")
        .arg(commands.join(" && "))
        .current_dir(layer.path())
        .status()
        .expect("sh runs");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let loaded = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(layer.path())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("cargo runs");

    assert!(
        copied >= 3,
        "the layer copies the manifests and the lock file"
    );
    assert!(made.success(), "{run}");
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
}
