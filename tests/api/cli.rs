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
