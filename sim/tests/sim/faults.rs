//! Injected faults: a status answered without work (the service's or a
//! proxy's), a connection cut before or after the work, a delay, faults
//! bound to one project, and the random chaos mode.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use openstack_sim::{Chaos, Fault, FaultKind, Op};

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

#[tokio::test]
async fn a_project_fault_fires_only_on_that_projects_calls() {
    let h = Harness::start().await;
    let token_a = h.token(0).await;
    let token_b = h.token(1).await;
    h.sim().inject_for(
        &h.project(1),
        Fault {
            op: Op::BackupCreate,
            kind: FaultKind::Status(500),
            times: 1,
        },
    );

    // tenant-a's create is spared and leaves the fault queued ...
    let spared = h.create_backup(0, 0, &token_a, None, json!({})).await;
    assert_eq!(spared.status, StatusCode::ACCEPTED, "{}", spared.body);
    // ... for tenant-b's, which takes it.
    let hit = h.create_backup(1, 0, &token_b, None, json!({})).await;
    assert_eq!(hit.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(hit.body["computeFault"]["code"], 500);
    assert!(h.sim().backups(&h.project(1)).is_empty());
    let again = h.create_backup(1, 0, &token_b, None, json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
}

#[tokio::test]
async fn bare_status_answers_a_proxys_html_page_without_doing_the_work() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    h.sim().inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::BareStatus(429),
        times: 1,
    });
    let url = format!("{}/backups", h.running.endpoint(&h.project(0)));
    let body = json!({"backup": {"volume_id": h.volume_of(0, 0), "snapshot_id": h.snapshot(0, 0)}});
    let response = h
        .client
        .post(&url)
        .header("x-auth-token", &token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("an answer");

    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = response.headers().clone();
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/html")
    );
    assert!(headers.get("x-openstack-request-id").is_none());
    assert!(headers.get("openstack-api-version").is_none());
    let text = response.text().await.expect("body");
    assert_eq!(
        text,
        "<html><body><h1>429 Too Many Requests</h1></body></html>\n"
    );
    assert!(h.sim().backups(&h.project(0)).is_empty());
    assert_eq!(h.sim().calls(Op::BackupCreate), 1);
}

#[tokio::test]
async fn chaos_misbehaves_on_a_share_of_calls_and_every_call_is_counted() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    h.sim().set_chaos(Some(Chaos {
        error_rate: 0.3,
        drop_before_rate: 0.2,
        drop_after_rate: 0.2,
        seed: Some(11),
        ..Chaos::default()
    }));

    let url = format!("{}/snapshots", h.running.endpoint(&h.project(0)));
    let headers = [("x-auth-token", token.as_str())];
    let calls = 60;
    let (mut ok, mut errors, mut cut) = (0, 0, 0);
    for _ in 0..calls {
        match h.try_send(Method::GET, &url, &headers, None).await {
            Ok(answer) if answer.status == StatusCode::OK => ok += 1,
            Ok(answer) => {
                assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(answer.body["serviceUnavailable"]["code"], 503);
                errors += 1;
            }
            Err(_) => cut += 1,
        }
    }

    let stats = h.sim().chaos_stats();
    assert_eq!(stats.errors, errors);
    assert_eq!(stats.dropped_before + stats.dropped_after, cut);
    assert_eq!(ok + errors + cut, calls);
    assert!(ok > 0 && errors > 0 && cut > 0, "{stats:?}");
    assert_eq!(h.sim().calls(Op::SnapshotList), calls);
    // Keystone is spared by default.
    assert_eq!(
        h.issue("demo-appcred-a", "demo-secret-a").await.status,
        StatusCode::CREATED
    );

    h.sim().set_chaos(None);
    let answer = h.try_send(Method::GET, &url, &headers, None).await;
    assert_eq!(answer.expect("an answer").status, StatusCode::OK);
}

#[tokio::test]
async fn chaos_answers_lost_after_the_work_still_make_the_backup() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    h.sim().set_chaos(Some(Chaos {
        drop_after_rate: 1.0,
        ..Chaos::default()
    }));
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
    assert_eq!(h.sim().backups(&h.project(0)).len(), 1);
    assert_eq!(h.sim().chaos_stats().dropped_after, 1);
}
