//! The committed `openapi/openapi.json` is the one the code generates.

#[test]
fn committed_openapi_spec_matches_the_code() {
    let generated = backup_gateway::api::openapi_json().expect("spec renders");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -- openapi --output openapi/openapi.json` and commit it"
    );
}

#[tokio::test]
async fn the_served_spec_is_the_committed_one() {
    let app = crate::helpers::TestApp::spawn().await;
    let served: serde_json::Value = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let generated: serde_json::Value =
        serde_json::from_str(&backup_gateway::api::openapi_json().expect("spec")).expect("json");
    assert_eq!(served, generated);
    for path in [
        "/snapshots/{snapshot_id}/backups",
        "/jobs/{job_id}",
        "/jobs",
        "/snapshots",
        "/healthz",
        "/readyz",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path} missing");
    }
}
