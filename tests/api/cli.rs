//! The command line as an operator meets it: what a configuration error
//! looks like.

use std::process::Command;

#[test]
fn a_configuration_error_is_one_line_naming_the_problem_even_with_backtraces_on() {
    let out = Command::new(env!("CARGO_BIN_EXE_backup-gateway"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tenant",
            "tenant-a=cloud-a",
        ])
        .args([
            "--database-url",
            "sqlite::memory:",
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
            "--jwt-allow-any-issuer-audience",
        ])
        .env("RUST_BACKTRACE", "1")
        .env_remove("OS_CLIENT_CONFIG_FILE")
        .env_remove("BACKUP_GATEWAY_TENANTS")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("backup-gateway: "), "{stderr}");
    assert!(stderr.contains("clouds-file"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert!(!stderr.contains("Error: "), "{stderr}");
}

#[tokio::test]
async fn healthcheck_exits_0_for_a_live_gateway_and_1_for_none() {
    let app = crate::helpers::TestApp::spawn().await;
    let live = app.address.trim_start_matches("http://").to_owned();
    let port = live.rsplit(':').next().expect("port").to_owned();
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();

    let check = |listen: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_backup-gateway"))
                .args(["healthcheck", "--listen", &listen, "--timeout", "2s"])
                .output()
                .expect("runs")
        })
    };
    let up = check(live).await.expect("joined");
    // As a container gives it: the address it listens on, all interfaces.
    let unspecified = check(format!("0.0.0.0:{port}")).await.expect("joined");
    let down = check(nobody).await.expect("joined");

    assert_eq!(
        up.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(unspecified.status.code(), Some(0));
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/healthz"));
}

#[test]
fn a_clouds_file_that_is_missing_or_a_folder_is_named_as_such() {
    let run = |clouds: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_backup-gateway"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tenant",
                "tenant-a=cloud-a",
            ])
            .args(["--clouds-file", clouds, "--database-url", "sqlite::memory:"])
            .args([
                "--jwt-secret",
                "0123456789abcdef0123456789abcdef",
                "--jwt-allow-any-issuer-audience",
            ])
            .env_remove("BACKUP_GATEWAY_TENANTS")
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let folder = std::env::temp_dir();

    let (missing_status, missing) = run("/nonexistent/clouds.yaml");
    let (folder_status, in_folder) = run(folder.to_str().expect("utf-8"));

    assert_eq!(missing_status, Some(1));
    assert!(
        missing.contains("--clouds-file /nonexistent/clouds.yaml"),
        "{missing}"
    );
    assert!(missing.contains("No such file"), "{missing}");
    assert_eq!(folder_status, Some(1));
    assert!(
        in_folder.contains("is a directory, not a clouds.yaml"),
        "{in_folder}"
    );
    for text in [&missing, &in_folder] {
        assert!(!text.contains("--tenant"), "blames the tenant map: {text}");
        assert!(text.matches("os error").count() <= 1, "said twice: {text}");
    }
}
