//! The `openstack-sim` binary as a user runs it: its `--help`, the example
//! seed file, the clouds.yaml it writes, and its log off a terminal.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[test]
fn help_shows_the_defaults_and_points_to_the_example_seed() {
    let out = Command::new(env!("CARGO_BIN_EXE_openstack-sim"))
        .arg("--help")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for default in [
        "[default: 127.0.0.1:5000]",
        "[default: 127.0.0.1:8776]",
        "[default: 2s]",
        "[default: 1h]",
        "sim/examples/seed.json",
    ] {
        assert!(help.contains(default), "{default} missing from:\n{help}");
    }
}

#[test]
fn the_example_seed_starts_a_cloud_whose_clouds_yaml_only_its_owner_reads() {
    let dir = std::env::temp_dir().join(format!("sim-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let clouds = dir.join("clouds.yaml");
    // A file left readable by all: the simulator narrows it.
    std::fs::write(&clouds, "old").expect("old file");
    let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_openstack-sim"))
        .args(["--seed", seed, "--clouds-yaml-out"])
        .arg(&clouds)
        .args(["--keystone-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--cinder-listen", &format!("127.0.0.1:{}", free_port())])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while stdout.read_line(&mut line).expect("reads") > 0 && !line.contains("Cinder:") {}
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let output = child.wait_with_output().expect("ends");
    let log = String::from_utf8_lossy(&output.stderr);
    let yaml = std::fs::read_to_string(&clouds).expect("clouds.yaml");
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&clouds)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    };
    let _ = std::fs::remove_dir_all(&dir);

    assert!(line.contains("Cinder:"), "no Cinder line: {log}");
    assert!(yaml.contains("team-db"), "{yaml}");
    assert_eq!(mode, 0o600);
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "colours in a piped log: {log:?}");
}

#[test]
fn a_public_host_names_the_simulator_in_its_urls() {
    let keystone_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_openstack-sim"))
        .args(["--public-host", "openstack-sim"])
        .args(["--keystone-listen", &format!("0.0.0.0:{keystone_port}")])
        .args(["--cinder-listen", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut printed = String::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).expect("reads") > 0 {
        printed.push_str(&line);
        if line.contains("auth_url") {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();

    assert!(
        printed.contains(&format!("http://openstack-sim:{keystone_port}/v3")),
        "{printed}"
    );
    assert!(!printed.contains("0.0.0.0"), "{printed}");
}

#[test]
fn help_lists_the_control_routes() {
    let out = Command::new(env!("CARGO_BIN_EXE_openstack-sim"))
        .arg("--help")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);

    assert!(out.status.success());
    for route in [
        "GET    /_sim/calls",
        "DELETE /_sim/calls",
        "GET    /_sim/settings",
        "PATCH  /_sim/settings",
        "POST   /_sim/finish-pending",
        "GET    /_sim/backups/count",
        "no authentication",
    ] {
        assert!(help.contains(route), "{route} missing from:\n{help}");
    }
}

#[tokio::test]
async fn the_binary_serves_the_control_endpoint_on_keystones_port() {
    let keystone_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_openstack-sim"))
        .args(["--backup-duration", "750ms", "--chaos-error-rate", "0.5"])
        .args(["--keystone-listen", &format!("127.0.0.1:{keystone_port}")])
        .args(["--cinder-listen", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while stdout.read_line(&mut line).expect("reads") > 0 && !line.contains("Cinder:") {}
    let root = format!("http://127.0.0.1:{keystone_port}/_sim");
    let client = reqwest::Client::new();

    let settings = client.get(format!("{root}/settings")).send().await;
    let patched = client
        .patch(format!("{root}/settings"))
        .body(r#"{"chaos": null}"#)
        .send()
        .await;
    let calls = client.get(format!("{root}/calls")).send().await;
    let _ = child.kill();
    let _ = child.wait();

    let settings: serde_json::Value = settings.expect("an answer").json().await.expect("json");
    assert_eq!(settings["backup_duration_ms"], 750);
    assert_eq!(settings["chaos"]["error_rate"], 0.5);
    let patched: serde_json::Value = patched.expect("an answer").json().await.expect("json");
    assert!(patched["chaos"].is_null(), "{patched}");
    let calls: serde_json::Value = calls.expect("an answer").json().await.expect("json");
    assert_eq!(calls, serde_json::json!({"calls": [], "total": 0}));
}
