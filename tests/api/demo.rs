//! `serve --demo` as a user runs it: the binary, in a folder of its own,
//! with no flags but the address.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;

use crate::helpers::free_port;

/// Starts `backup-gateway serve --demo --listen 127.0.0.1:PORT` in `dir`,
/// its output in `dir/NAME.log`.
fn spawn_demo(dir: &Path, port: u16, name: &str) -> Child {
    spawn_demo_with(dir, port, name, &[])
}

/// [`spawn_demo`] with more flags.
fn spawn_demo_with(dir: &Path, port: u16, name: &str, flags: &[&str]) -> Child {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
    Command::new(env!("CARGO_BIN_EXE_backup-gateway"))
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .args(flags)
        .current_dir(dir)
        .env_remove("BACKUP_GATEWAY_TENANTS")
        .env_remove("BACKUP_GATEWAY_DATABASE_URL")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("the demo starts")
}

/// Kills the demo when the test ends, whether it passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the demo in `dir` wrote its variables and answers
/// `/readyz`; returns `TOKEN_A`.
async fn wait_ready(dir: &Path, port: u16, child: &mut Child) -> String {
    wait_ready_in(dir, &dir.join("data"), port, child).await
}

/// [`wait_ready`] for a demo whose files are in `data`.
async fn wait_ready_in(dir: &Path, data: &Path, port: u16, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(env) = std::fs::read_to_string(data.join("demo.env"))
            && reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success())
        {
            return env
                .lines()
                .find_map(|l| l.strip_prefix("export TOKEN_A="))
                .expect("TOKEN_A")
                .to_owned();
        }
        assert!(
            child.try_wait().expect("status").is_none(),
            "the demo exited: {}",
            std::fs::read_to_string(dir.join("first.log")).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "the demo never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most 30 s) for `child` to exit; its status and its log.
async fn exit_of(mut child: Child, dir: &Path, name: &str) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("status") {
            let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            return (status, log);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name} did not exit");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Backs up tenant-a's first snapshot on the demo at `port`; the job's
/// address.
async fn create_backup(client: &reqwest::Client, port: u16, token: &str) -> String {
    let created = client
        .post(format!(
            "http://127.0.0.1:{port}/snapshots/000005a9-0000-4000-8000-a00000000001/backups"
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("created");
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    created.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

#[tokio::test]
async fn a_second_demo_never_touches_a_running_ones_store() {
    // Arrange: a demo with a job.
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut first = Running(spawn_demo(dir.path(), port, "first"));
    let token = wait_ready(dir.path(), port, &mut first.0).await;
    let client = reqwest::Client::new();
    let job = create_backup(&client, port, &token).await;

    // Act: a second demo on the same port, then one on another port, both
    // in the same folder.
    let same_port = spawn_demo(dir.path(), port, "same-port");
    let (same_port_status, same_port_log) = exit_of(same_port, dir.path(), "same-port").await;
    let other_port = spawn_demo(dir.path(), free_port(), "other-port");
    let (other_port_status, other_port_log) = exit_of(other_port, dir.path(), "other-port").await;

    // Assert: both refused, clearly, and the first demo's job is intact.
    assert!(!same_port_status.success());
    assert!(
        same_port_log.contains(&format!("127.0.0.1:{port}")) && same_port_log.contains("in use"),
        "{same_port_log}"
    );
    assert!(!other_port_status.success());
    assert!(other_port_log.contains("another demo"), "{other_port_log}");
    for log in [&same_port_log, &other_port_log] {
        assert!(!log.contains("stack backtrace"), "{log}");
    }
    let still = client
        .get(format!("http://127.0.0.1:{port}{job}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answered");
    assert_eq!(still.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_demo_keeps_its_files_where_demo_data_says() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("elsewhere");
    let port = free_port();

    let mut demo = Running(spawn_demo_with(
        dir.path(),
        port,
        "first",
        &["--demo-data", data.to_str().expect("utf-8")],
    ));
    let token = wait_ready_in(dir.path(), &data, port, &mut demo.0).await;

    assert!(!token.is_empty());
    for file in ["demo.db", "demo.env", "demo-clouds.yaml", "demo.lock"] {
        assert!(data.join(file).exists(), "{file} missing");
    }
    assert!(!dir.path().join("data").exists(), "data/ was made too");
}

#[tokio::test]
async fn a_demo_keeps_its_own_store_whatever_database_url_the_shell_sets() {
    // Arrange: a demo with a job, and a shell whose environment names that
    // demo's store (as an operator's exported settings would).
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut first = Running(spawn_demo(dir.path(), port, "first"));
    let token = wait_ready(dir.path(), port, &mut first.0).await;
    let client = reqwest::Client::new();
    create_backup(&client, port, &token).await;
    let other_dir = tempfile::tempdir().expect("dir");
    let other_port = free_port();
    let log = std::fs::File::create(other_dir.path().join("first.log")).expect("log");

    // Act
    let mut second = Running(
        Command::new(env!("CARGO_BIN_EXE_backup-gateway"))
            .args([
                "serve",
                "--demo",
                "--listen",
                &format!("127.0.0.1:{other_port}"),
            ])
            .current_dir(other_dir.path())
            .env_remove("BACKUP_GATEWAY_TENANTS")
            .env(
                "BACKUP_GATEWAY_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("data/demo.db").display()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("the demo starts"),
    );
    let other_token = wait_ready(other_dir.path(), other_port, &mut second.0).await;
    let listed = client
        .get(format!("http://127.0.0.1:{other_port}/jobs"))
        .bearer_auth(&other_token)
        .send()
        .await
        .expect("listed");
    let listed: serde_json::Value = listed.json().await.expect("json");

    // Assert: the second demo has a store of its own, empty.
    assert!(other_dir.path().join("data/demo.db").exists());
    assert_eq!(listed["jobs"], serde_json::json!([]), "{listed}");
}
