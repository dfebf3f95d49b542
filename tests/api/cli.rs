//! The command line as an operator meets it: what a configuration error
//! looks like.

use std::process::Command;

#[test]
fn a_configuration_error_is_one_line_naming_the_problem_even_with_backtraces_on() {
    let (status, stderr) = gateway(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tenant",
            "tenant-a=cloud-a",
            "--database-url",
            "sqlite::memory:",
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
            "--jwt-allow-any-issuer-audience",
        ],
        &[("RUST_BACKTRACE", "1")],
    );

    assert_eq!(status, Some(1), "{stderr}");
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
    let refused = String::from_utf8_lossy(&down.stderr);
    assert!(refused.contains("/healthz"), "{refused}");
    assert!(refused.contains("could not be reached"), "{refused}");
}

#[test]
fn the_document_printed_to_a_reader_that_stops_early_is_no_failure() {
    // As `backup-gateway openapi | head` does: the reader goes after a
    // few bytes; the document is larger than a pipe holds.
    let mut printing = Command::new(env!("CARGO_BIN_EXE_backup-gateway"))
        .arg("openapi")
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let mut first = [0_u8; 16];
    std::io::Read::read_exact(printing.stdout.as_mut().expect("stdout"), &mut first)
        .expect("the document starts");
    drop(printing.stdout.take());

    let done = printing.wait_with_output().expect("ends");

    assert_eq!(
        done.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        done.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}

#[test]
fn a_clouds_file_that_is_missing_or_a_folder_is_named_as_such() {
    let run = |clouds: &str| {
        gateway(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tenant",
                "tenant-a=cloud-a",
                "--clouds-file",
                clouds,
                "--database-url",
                "sqlite::memory:",
                "--jwt-secret",
                "0123456789abcdef0123456789abcdef",
                "--jwt-allow-any-issuer-audience",
            ],
            &[],
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

/// A clouds.yaml with one application-credential entry, `cloud-a`.
const CLOUDS_YAML: &str = "clouds:\n  cloud-a:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: https://keystone.example/v3\n      application_credential_id: abc\n      application_credential_secret: s3cret\n";

/// `backup-gateway ARGS` with the environment `env` (and none of the
/// gateway's own from the caller): its status and output.
fn gateway(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backup-gateway"));
    for (key, _) in std::env::vars() {
        if key.starts_with("BACKUP_GATEWAY_") || key == "OS_CLIENT_CONFIG_FILE" {
            command.env_remove(key);
        }
    }
    let out = command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn check_config_reads_a_toml_file_under_the_environment_and_the_flags() {
    // Arrange: every setting in a file.
    let dir = tempfile::tempdir().expect("dir");
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, CLOUDS_YAML).expect("clouds.yaml");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:7001\"\nclouds_file = \"{}\"\ntenant = [\"team-a=cloud-a\"]\n\
             jwt_secret = \"0123456789abcdef0123456789abcdef\"\njwt-issuer = \"portal\"\njwt_audience = \"backup-gateway\"\n\
             database_url = \"postgres://gw:hunter2@db.internal/jobs\"\nmax_wait = \"30s\"\n",
            clouds.display()
        ),
    )
    .expect("config");
    let file = config.to_str().expect("utf-8");

    // Act
    let (from_file, file_text) = gateway(&["check-config", "--config", file], &[]);
    let (from_env, env_text) = gateway(
        &["check-config"],
        &[
            ("BACKUP_GATEWAY_CONFIG", file),
            ("BACKUP_GATEWAY_LISTEN", "127.0.0.1:7002"),
        ],
    );
    let (from_flag, flag_text) = gateway(
        &[
            "check-config",
            "--config",
            file,
            "--listen",
            "127.0.0.1:7003",
        ],
        &[("BACKUP_GATEWAY_LISTEN", "127.0.0.1:7002")],
    );

    // Assert: the file's settings, the environment over the file, a flag
    // over both; the store's password never printed.
    assert_eq!(from_file, Some(0), "{file_text}");
    assert!(
        file_text.contains("configuration OK: 1 tenant(s) (team-a)"),
        "{file_text}"
    );
    assert!(
        file_text.contains("listening on 127.0.0.1:7001"),
        "{file_text}"
    );
    assert!(file_text.contains("store postgres"), "{file_text}");
    assert!(!file_text.contains("hunter2"), "{file_text}");
    assert_eq!(from_env, Some(0), "{env_text}");
    assert!(
        env_text.contains("listening on 127.0.0.1:7002"),
        "{env_text}"
    );
    assert_eq!(from_flag, Some(0), "{flag_text}");
    assert!(
        flag_text.contains("listening on 127.0.0.1:7003"),
        "{flag_text}"
    );
}

#[test]
fn check_config_names_the_setting_at_fault() {
    let dir = tempfile::tempdir().expect("dir");
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, CLOUDS_YAML).expect("clouds.yaml");
    let base = [
        "check-config",
        "--clouds-file",
        clouds.to_str().expect("utf-8"),
        "--jwt-secret",
        "0123456789abcdef0123456789abcdef",
        "--jwt-allow-any-issuer-audience",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        gateway(&args, &[])
    };
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("written");
        path.to_str().expect("utf-8").to_owned()
    };
    let unknown = write("unknown.toml", "colour = \"red\"\n");
    let bad_value = write("bad.toml", "max_wait = \"forever\"\n");

    let cases = [
        (with(&["--tenant", "team-a=cloud-b"]), "cloud-b"),
        (
            with(&["--tenant", "team-a=cloud-a", "--config", &unknown]),
            "`colour`: no such setting",
        ),
        (
            with(&["--tenant", "team-a=cloud-a", "--config", &bad_value]),
            "--max-wait",
        ),
        (
            with(&[
                "--tenant",
                "team-a=cloud-a",
                "--database-url",
                "mysql://db/jobs",
            ]),
            "--database-url",
        ),
    ];
    // Times the gateway counts by (a zero would stop its worker).
    let zeros = [
        "--poll-interval",
        "--lease-ttl",
        "--upstream-timeout",
        "--event-heartbeat",
        "--header-read-timeout",
    ]
    .map(|flag| (with(&["--tenant", "team-a=cloud-a", flag, "0s"]), flag));
    let cases = cases.into_iter().chain(zeros);

    for ((status, text), named) in cases {
        assert_ne!(status, Some(0), "{text}");
        assert!(text.contains(named), "{named} not named in: {text}");
    }
    let (ok, text) = with(&["--tenant", "team-a=cloud-a"]);
    assert_eq!(ok, Some(0), "{text}");
}

#[tokio::test]
async fn a_minted_token_is_accepted_by_a_gateway_of_the_same_settings() {
    use crate::helpers::{JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET};
    let app = crate::helpers::TestApp::spawn().await;
    let settings = [
        "--jwt-secret",
        JWT_SECRET,
        "--jwt-issuer",
        JWT_ISSUER,
        "--jwt-audience",
        JWT_AUDIENCE,
    ];

    let mut args = vec!["token", "--for", "tenant-a", "--valid-for", "10m"];
    args.extend_from_slice(&settings);
    let (minted, token) = gateway(&args, &[]);
    let (unsigned, refusal) = gateway(
        &[
            "token",
            "--for",
            "tenant-a",
            "--jwt-jwks-url",
            "https://idp.example/jwks",
        ],
        &[],
    );
    let listed = app
        .client
        .get(format!("{}/jobs", app.address))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("answered");

    assert_eq!(minted, Some(0), "{token}");
    assert_eq!(listed.status(), 200);
    assert_eq!(unsigned, Some(1), "{refusal}");
    assert!(refusal.contains("--jwt-secret"), "{refusal}");
}

#[tokio::test]
async fn a_secret_from_the_flags_or_environment_beats_a_secret_file_of_the_config_file() {
    use crate::helpers::{JWT_AUDIENCE, JWT_ISSUER, JWT_SECRET};
    // Arrange: a config file whose key source is a secret file holding
    // another secret than the gateway's.
    let app = crate::helpers::TestApp::spawn().await;
    let dir = tempfile::tempdir().expect("dir");
    let secret_file = dir.path().join("jwt-secret");
    std::fs::write(&secret_file, "not-the-gateways-secret-0123456789abcdef").expect("secret");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "jwt_secret_file = \"{}\"\njwt_issuer = \"{JWT_ISSUER}\"\njwt_audience = \"{JWT_AUDIENCE}\"\n",
            secret_file.display()
        ),
    )
    .expect("config");
    let file = config.to_str().expect("utf-8");
    let mint = ["token", "--for", "tenant-a", "--config", file];

    // Act: tokens minted with the gateway's secret from the environment,
    // and from a flag.
    let (env_status, from_env) = gateway(&mint, &[("BACKUP_GATEWAY_JWT_SECRET", JWT_SECRET)]);
    let mut with_flag = mint.to_vec();
    with_flag.extend(["--jwt-secret", JWT_SECRET]);
    let (flag_status, from_flag) = gateway(&with_flag, &[]);
    let (file_status, from_file) = gateway(&mint, &[]);

    // Assert: signed with the gateway's secret, not the file's.
    assert_eq!(env_status, Some(0), "{from_env}");
    assert_eq!(flag_status, Some(0), "{from_flag}");
    assert_eq!(file_status, Some(0), "{from_file}");
    for (token, accepted) in [(from_env, true), (from_flag, true), (from_file, false)] {
        let listed = app
            .client
            .get(format!("{}/jobs", app.address))
            .bearer_auth(token.trim())
            .send()
            .await
            .expect("answered");
        assert_eq!(listed.status() == 200, accepted, "{token}");
    }
}

#[test]
fn a_bad_value_in_the_file_is_named_by_the_file_and_its_key() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, "max_wait = \"30x\"\n").expect("config");
    let file = config.to_str().expect("utf-8");

    let (from_file, file_text) = gateway(&["check-config", "--config", file], &[]);
    // The same value as a flag is the parser's own (flag named, exit 2);
    // a good flag overrides the bad file value.
    let (from_flag, flag_text) = gateway(&["check-config", "--max-wait", "30x"], &[]);
    let (overridden, overridden_text) = gateway(
        &["check-config", "--config", file, "--max-wait", "nope"],
        &[],
    );

    assert_eq!(from_file, Some(1), "{file_text}");
    assert!(
        file_text.contains(file) && file_text.contains("`max_wait`") && file_text.contains("30x"),
        "{file_text}"
    );
    assert_eq!(file_text.trim().lines().count(), 1, "{file_text}");
    assert_eq!(from_flag, Some(2), "{flag_text}");
    assert!(flag_text.contains("--max-wait"), "{flag_text}");
    assert_eq!(
        overridden,
        Some(2),
        "the flag's value is the bad one: {overridden_text}"
    );
    assert!(!overridden_text.contains("`max_wait`"), "{overridden_text}");
    let (good_flag, good_text) = gateway(
        &["check-config", "--config", file, "--max-wait", "10s"],
        &[],
    );
    assert!(!good_text.contains("`max_wait`"), "{good_text}");
    assert_ne!(good_flag, Some(2), "{good_text}");
    // A bad value from the environment is the environment's, not the file's.
    let (from_env, env_text) = gateway(
        &["check-config", "--config", file],
        &[("BACKUP_GATEWAY_MAX_WAIT", "soon")],
    );
    assert_eq!(from_env, Some(2), "{env_text}");
    assert!(!env_text.contains("`max_wait`"), "{env_text}");
}
