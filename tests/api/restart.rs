//! A restart loses nothing: jobs `queued` and `running` in the store are
//! carried on by the next process.

use openstack_sim::{Fault, FaultKind, Op};
use serde_json::json;

use crate::helpers::{TestApp, snapshot};

#[tokio::test]
async fn queued_and_running_jobs_finish_after_a_restart() {
    // Arrange: one job running, one queued (Cinder was unavailable).
    let mut app = TestApp::spawn().await;
    let running = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    assert_eq!(running["state"], "running");
    app.sim.inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::Status(503),
        times: 1,
    });
    let queued = app
        .create_backup("tenant-b", &snapshot('b', 1), json!({}))
        .await
        .body;
    assert_eq!(queued["state"], "queued");

    // Act: the process goes away and a new one starts on the same store.
    app.restart().await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.cycle().await;
    app.finish_backups();
    app.cycle().await;

    // Assert
    let running = app
        .job("tenant-a", running["id"].as_str().expect("id"))
        .await;
    assert_eq!(running["state"], "succeeded", "{running}");
    let queued = app
        .job("tenant-b", queued["id"].as_str().expect("id"))
        .await;
    assert_eq!(queued["state"], "succeeded", "{queued}");
    assert_eq!(
        app.sim.calls(Op::BackupCreate),
        3,
        "one refused by the fault, then one per job"
    );
}

#[tokio::test]
async fn readiness_reports_the_store_and_the_worker() {
    let mut app = TestApp::spawn().await;
    let ready = app.get("tenant-a", "/readyz").await;
    assert_eq!(ready.status, reqwest::StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready");
    app.stop().await;
    assert!(
        app.client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .is_err(),
        "stopped"
    );
}
