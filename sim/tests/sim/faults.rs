//! Injected faults: a status answered without work, a connection cut
//! before or after the work, a delay.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use openstack_sim::{Fault, FaultKind, Op};

use crate::support::Harness;

#[tokio::test]
async fn status_fault_answers_cinders_body_without_doing_the_work() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    h.sim().inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::Status(503),
        times: 1,
    });
    let answer = h.create_backup(0, 0, &token, None, json!({})).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.body["serviceUnavailable"]["code"], 503);
    assert!(h.sim().backups(&h.project(0)).is_empty());
    assert_eq!(
        h.sim().snapshot_status(&h.snapshot(0, 0)).as_deref(),
        Some("available")
    );

    // Used up: the next call works, and both were counted.
    let answer = h.create_backup(0, 0, &token, None, json!({})).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(h.sim().calls(Op::BackupCreate), 2);
}

#[tokio::test]
async fn keystone_status_fault_uses_keystones_shape() {
    let h = Harness::start().await;
    h.sim().inject(Fault {
        op: Op::TokenIssue,
        kind: FaultKind::Status(500),
        times: 1,
    });
    let answer = h.issue("demo-appcred-a", "demo-secret-a").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.body["error"]["code"], 500);
    assert_eq!(
        h.issue("demo-appcred-a", "demo-secret-a").await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn drop_after_work_creates_the_backup_but_the_client_sees_no_answer() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    h.sim().inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::DropAfterWork,
        times: 1,
    });
    let url = format!("{}/backups", h.running.endpoint(&h.project(0)));
    let body = json!({"backup": {"volume_id": h.volume_of(0, 0), "snapshot_id": h.snapshot(0, 0)}});
    let result = h
        .try_send(
            Method::POST,
            &url,
            &[("x-auth-token", token.as_str())],
            Some(&body.to_string()),
        )
        .await;
    assert!(result.is_err(), "the answer was lost: {result:?}");

    // The lost 202: the backup exists and the snapshot is busy.
    let backups = h.sim().backups(&h.project(0));
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0]["status"], "creating");
    assert_eq!(
        h.sim().snapshot_status(&h.snapshot(0, 0)).as_deref(),
        Some("backing-up")
    );
}

#[tokio::test]
async fn drop_before_work_does_nothing() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    h.sim().inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::DropBeforeWork,
        times: 1,
    });
    let url = format!("{}/backups", h.running.endpoint(&h.project(0)));
    let body = json!({"backup": {"volume_id": h.volume_of(0, 0), "snapshot_id": h.snapshot(0, 0)}});
    let result = h
        .try_send(
            Method::POST,
            &url,
            &[("x-auth-token", token.as_str())],
            Some(&body.to_string()),
        )
        .await;
    assert!(result.is_err(), "no answer expected: {result:?}");
    assert!(h.sim().backups(&h.project(0)).is_empty());
    assert_eq!(
        h.sim().snapshot_status(&h.snapshot(0, 0)).as_deref(),
        Some("available")
    );
    assert_eq!(h.sim().calls(Op::BackupCreate), 1);
}

#[tokio::test]
async fn delayed_call_still_answers_normally() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    h.sim().inject(Fault {
        op: Op::SnapshotList,
        kind: FaultKind::Delay(Duration::from_millis(10)),
        times: 1,
    });
    let answer = h
        .cinder(Method::GET, &h.project(0), "/snapshots", &token, None, None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}
