//! The control endpoint under `/_sim/` on Keystone's listener: call
//! counters by service, operation and status, the run-time settings, ending
//! pending backups and counting backups. Its own calls are neither counted
//! nor faulted.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use openstack_sim::{CallCount, Chaos, Fault, FaultKind, Op};

use crate::support::{Answer, Harness};

fn backup_id(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    answer.body["backup"]["id"]
        .as_str()
        .expect("backup id")
        .to_owned()
}

async fn backup_status(h: &Harness, token: &str, id: &str) -> Value {
    let answer = h
        .cinder(
            Method::GET,
            &h.project(0),
            &format!("/backups/{id}"),
            token,
            None,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["backup"]["status"].clone()
}

/// The settings of a fresh harness.
fn initial_settings() -> Value {
    json!({
        "backup_duration_ms": 24 * 3600 * 1000,
        "token_ttl_ms": 3600 * 1000,
        "fail_reason": null,
        "chaos": null,
    })
}

#[tokio::test]
async fn calls_are_counted_by_service_operation_and_the_status_answered() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    h.sim().inject(Fault {
        op: Op::BackupDetail,
        kind: FaultKind::Status(503),
        times: 1,
    });
    h.sim().inject(Fault {
        op: Op::SnapshotList,
        kind: FaultKind::DropBeforeWork,
        times: 1,
    });

    let faulted = h
        .cinder(Method::GET, &project, "/backups/detail", &token, None, None)
        .await;
    let served = h
        .cinder(Method::GET, &project, "/backups/detail", &token, None, None)
        .await;
    let url = format!("{}/snapshots", h.running.endpoint(&project));
    let cut = h
        .try_send(Method::GET, &url, &[("x-auth-token", token.as_str())], None)
        .await;
    let calls = h.control(Method::GET, "/calls", None).await;

    assert_eq!(faulted.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(served.status, StatusCode::OK);
    assert!(cut.is_err(), "the connection was cut: {cut:?}");
    assert_eq!(calls.status, StatusCode::OK);
    assert_eq!(calls.header("content-type"), Some("application/json"));
    assert_eq!(
        calls.body,
        json!({
            "calls": [
                {"service": "cinder", "operation": "BackupDetail", "status": 200, "count": 1},
                {"service": "cinder", "operation": "BackupDetail", "status": 503, "count": 1},
                {"service": "cinder", "operation": "SnapshotList", "status": 0, "count": 1},
                {"service": "keystone", "operation": "TokenIssue", "status": 201, "count": 1},
            ],
            "total": 4,
        })
    );
    // The library sees the same, and the per-operation counters are as before.
    let detail = h.sim().calls_by_status();
    assert_eq!(detail.len(), 4);
    assert_eq!(
        detail[2],
        CallCount {
            service: "cinder",
            operation: "SnapshotList",
            status: CallCount::NO_ANSWER,
            count: 1,
        }
    );
    assert_eq!(h.sim().calls(Op::BackupDetail), 2);
    assert_eq!(h.sim().calls(Op::SnapshotList), 1);
}

#[tokio::test]
async fn delete_calls_resets_every_counter() {
    let h = Harness::start().await;
    h.token(0).await;

    let reset = h.control(Method::DELETE, "/calls", None).await;
    let calls = h.control(Method::GET, "/calls", None).await;

    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(reset.body, Value::Null);
    assert_eq!(calls.body, json!({"calls": [], "total": 0}));
    assert!(h.sim().call_counts().is_empty());
    assert!(h.sim().calls_by_status().is_empty());
}

#[tokio::test]
async fn control_calls_are_never_counted_nor_faulted() {
    let h = Harness::start().await;
    h.sim().set_chaos(Some(Chaos {
        error_rate: 1.0,
        keystone: true,
        ..Chaos::default()
    }));

    let settings = h.control(Method::GET, "/settings", None).await;
    let count = h.control(Method::GET, "/backups/count", None).await;
    let calls = h.control(Method::GET, "/calls", None).await;
    let issued = h.issue("demo-appcred-a", "demo-secret-a").await;

    assert_eq!(settings.status, StatusCode::OK);
    assert_eq!(count.status, StatusCode::OK);
    assert_eq!(calls.body, json!({"calls": [], "total": 0}));
    // Keystone's own operation does suffer the chaos.
    assert_eq!(issued.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.sim().call_counts().len(), 1);
    assert_eq!(h.sim().chaos_stats().errors, 1);
}

#[tokio::test]
async fn unknown_control_routes_and_methods_answer_a_json_error() {
    let h = Harness::start().await;

    let missing = h.control(Method::GET, "/nothing-here", None).await;
    let wrong_method = h.control(Method::PUT, "/calls", None).await;

    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body["error"].is_string(), "{}", missing.body);
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        wrong_method.body["error"].is_string(),
        "{}",
        wrong_method.body
    );
    assert!(h.sim().call_counts().is_empty());
}

#[tokio::test]
async fn get_settings_shows_the_settings_in_force() {
    let h = Harness::start().await;
    h.sim().set_chaos(Some(Chaos {
        error_rate: 0.25,
        latency: std::time::Duration::from_millis(40),
        latency_rate: 0.5,
        seed: Some(9),
        ..Chaos::default()
    }));
    h.sim().fail_backups(Some("disk on fire".to_owned()));

    let settings = h.control(Method::GET, "/settings", None).await;

    assert_eq!(settings.status, StatusCode::OK);
    assert_eq!(
        settings.body,
        json!({
            "backup_duration_ms": 24 * 3600 * 1000,
            "token_ttl_ms": 3600 * 1000,
            "fail_reason": "disk on fire",
            "chaos": {
                "error_rate": 0.25,
                "error_status": 503,
                "latency_ms": 40,
                "latency_rate": 0.5,
                "drop_before_rate": 0.0,
                "drop_after_rate": 0.0,
                "keystone": false,
                "seed": 9,
            },
        })
    );
}

#[tokio::test]
async fn patch_settings_sets_the_fields_given_and_answers_the_new_settings() {
    let h = Harness::start().await;

    let patched = h
        .control(
            Method::PATCH,
            "/settings",
            Some(&json!({
                "token_ttl_ms": 0,
                "fail_reason": "disk on fire",
                "chaos": {"error_rate": 0.5, "error_status": 500, "seed": 4},
            })),
        )
        .await;
    let shown = h.control(Method::GET, "/settings", None).await;

    let expected = json!({
        "backup_duration_ms": 24 * 3600 * 1000,
        "token_ttl_ms": 0,
        "fail_reason": "disk on fire",
        "chaos": {
            "error_rate": 0.5,
            "error_status": 500,
            "latency_ms": 0,
            "latency_rate": 0.0,
            "drop_before_rate": 0.0,
            "drop_after_rate": 0.0,
            "keystone": false,
            "seed": 4,
        },
    });
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body, expected);
    assert_eq!(shown.body, expected);
    let chaos = h.sim().chaos().expect("chaos on");
    assert_eq!((chaos.error_rate, chaos.error_status), (0.5, 500));
    // A token issued now is already expired: Cinder refuses it.
    let token = h.token(0).await;
    let refused = h
        .cinder(Method::GET, &h.project(0), "/snapshots", &token, None, None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    // A chaos object merges over the chaos in force; null turns it off.
    let merged = h
        .control(
            Method::PATCH,
            "/settings",
            Some(&json!({"chaos": {"latency_ms": 5}})),
        )
        .await;
    assert_eq!(merged.body["chaos"]["error_rate"], 0.5);
    assert_eq!(merged.body["chaos"]["latency_ms"], 5);
    let off = h
        .control(
            Method::PATCH,
            "/settings",
            Some(&json!({"chaos": null, "fail_reason": null, "token_ttl_ms": 3_600_000})),
        )
        .await;
    assert_eq!(off.body, initial_settings());
    assert!(h.sim().chaos().is_none());
}

#[tokio::test]
async fn a_refused_patch_changes_nothing() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let id = backup_id(&h.create_backup(0, 0, &token, None, json!({})).await);

    // Each body also sets the duration to 0, which would end the backup.
    for body in [
        json!({"backup_duration_ms": 0, "bogus": 1}),
        json!({"backup_duration_ms": 0, "token_ttl_ms": "1h"}),
        json!({"backup_duration_ms": 0, "fail_reason": 3}),
        json!({"backup_duration_ms": 0, "chaos": {"error_rate": 1.5}}),
        json!({"backup_duration_ms": 0, "chaos": {"drop_before_rate": -0.1}}),
        json!({"backup_duration_ms": 0, "chaos": {"error_status": 200}}),
        json!({"backup_duration_ms": 0, "chaos": {"bogus": true}}),
        json!({"backup_duration_ms": null}),
        json!(["backup_duration_ms", 0]),
    ] {
        let refused = h.control(Method::PATCH, "/settings", Some(&body)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            refused.body["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{body}: {}",
            refused.body
        );
    }
    let not_json = h
        .send(
            Method::PATCH,
            &format!(
                "{}/_sim/settings",
                h.running.keystone_url.trim_end_matches("/v3")
            ),
            &[],
            Some("{"),
        )
        .await;

    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    let shown = h.control(Method::GET, "/settings", None).await;
    assert_eq!(shown.body, initial_settings());
    assert_eq!(backup_status(&h, &token, &id).await, "creating");
}

#[tokio::test]
async fn finish_pending_ends_every_creating_and_deleting_backup() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let first = backup_id(&h.create_backup(0, 0, &token, None, json!({})).await);
    h.sim().finish_pending();
    let deleted = h
        .cinder(
            Method::DELETE,
            &h.project(0),
            &format!("/backups/{first}"),
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let second = backup_id(&h.create_backup(0, 1, &token, None, json!({})).await);

    let finished = h.control(Method::POST, "/finish-pending", None).await;

    assert_eq!(finished.status, StatusCode::NO_CONTENT);
    assert_eq!(backup_status(&h, &token, &second).await, "available");
    let backups = h.sim().backups(&h.project(0));
    assert_eq!(backups.len(), 1, "the deleted backup is gone");
    assert_eq!(backups[0]["id"], second.as_str());
}

#[tokio::test]
async fn backups_count_counts_every_status_in_every_project() {
    let h = Harness::start().await;
    let token_a = h.token(0).await;
    let token_b = h.token(1).await;
    let empty = h.control(Method::GET, "/backups/count", None).await;
    let done = backup_id(&h.create_backup(0, 0, &token_a, None, json!({})).await);
    let failed = backup_id(&h.create_backup(1, 0, &token_b, None, json!({})).await);
    h.sim().finish_pending();
    h.sim().set_backup_status(&failed, "error");
    let restoring = backup_id(&h.create_backup(0, 1, &token_a, None, json!({})).await);
    h.sim().finish_pending();
    h.sim().set_backup_status(&restoring, "restoring");
    backup_id(&h.create_backup(0, 2, &token_a, None, json!({})).await);
    let deleted = h
        .cinder(
            Method::DELETE,
            &h.project(0),
            &format!("/backups/{done}"),
            &token_a,
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);

    let count = h.control(Method::GET, "/backups/count", None).await;

    assert_eq!(
        empty.body,
        json!({"creating": 0, "available": 0, "error": 0, "deleting": 0, "restoring": 0, "total": 0})
    );
    assert_eq!(count.status, StatusCode::OK);
    assert_eq!(
        count.body,
        json!({"creating": 1, "available": 0, "error": 1, "deleting": 1, "restoring": 1, "total": 4})
    );
    assert_eq!(h.sim().backup_counts().total(), 4);
}

#[tokio::test]
async fn shortening_the_duration_at_run_time_finishes_pending_backups() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let older = backup_id(&h.create_backup(0, 0, &token, None, json!({})).await);
    let newer = backup_id(&h.create_backup(0, 1, &token, None, json!({})).await);
    assert_eq!(backup_status(&h, &token, &older).await, "creating");

    // From a day to nothing: both are due, the older and the newer.
    let patched = h
        .control(
            Method::PATCH,
            "/settings",
            Some(&json!({"backup_duration_ms": 0})),
        )
        .await;
    assert_eq!(patched.body["backup_duration_ms"], 0);
    assert_eq!(backup_status(&h, &token, &older).await, "available");
    assert_eq!(backup_status(&h, &token, &newer).await, "available");

    // Back to a day: a new backup waits again, a delete too, until the
    // duration is shortened once more.
    h.sim()
        .set_backup_duration(std::time::Duration::from_secs(24 * 3600));
    let third = backup_id(&h.create_backup(0, 2, &token, None, json!({})).await);
    let deleted = h
        .cinder(
            Method::DELETE,
            &h.project(0),
            &format!("/backups/{older}"),
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(backup_status(&h, &token, &third).await, "creating");
    assert_eq!(backup_status(&h, &token, &older).await, "deleting");

    h.sim().set_backup_duration(std::time::Duration::ZERO);

    assert_eq!(backup_status(&h, &token, &third).await, "available");
    let ids: Vec<Value> = h
        .sim()
        .backups(&h.project(0))
        .iter()
        .map(|b| b["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(third), json!(newer)]);
}
