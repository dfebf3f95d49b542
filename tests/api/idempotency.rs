//! `Idempotency-Key` on creates: a retry answers the first job, never a
//! second backup.

use std::time::Duration;

use openstack_sim::{Fault, FaultKind, Op};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PROJECT_A, PROJECT_B, TestApp, snapshot};

#[tokio::test]
async fn the_same_key_and_request_answer_the_same_job_and_make_one_backup() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "nightly", "metadata": {"b": "2", "a": "1"}});

    let first = app
        .create_with_key("tenant-a", &snapshot('a', 1), body.clone(), "key-1")
        .await;
    // The same request, its keys in another order and the key quoted.
    let retried = app
        .create_with_key(
            "tenant-a",
            &snapshot('a', 1),
            json!({"metadata": {"a": "1", "b": "2"}, "name": "nightly"}),
            "\"key-1\"",
        )
        .await;

    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.text);
    assert_eq!(retried.body["id"], first.body["id"]);
    assert_eq!(retried.header("location"), first.header("location"));
    assert_eq!(app.sim.calls(Op::BackupCreate), 1);
    assert_eq!(app.sim.backups(PROJECT_A).len(), 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_with_key("tenant-a", &snapshot('a', 1), json!({}), "key-1")
        .await;

    let other_body = app
        .create_with_key(
            "tenant-a",
            &snapshot('a', 1),
            json!({"name": "other"}),
            "key-1",
        )
        .await;
    let other_path = app
        .create_with_key("tenant-a", &snapshot('a', 2), json!({}), "key-1")
        .await;

    other_body.assert_problem(422, "idempotency-key-reused");
    other_path.assert_problem(422, "idempotency-key-reused");
    assert_eq!(app.sim.backups(PROJECT_A).len(), 1);
}

#[tokio::test]
async fn keys_are_per_tenant() {
    let app = TestApp::spawn().await;

    let a = app
        .create_with_key("tenant-a", &snapshot('a', 1), json!({}), "shared")
        .await;
    let b = app
        .create_with_key("tenant-b", &snapshot('b', 1), json!({}), "shared")
        .await;

    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert_eq!(b.status, StatusCode::ACCEPTED, "{}", b.text);
    assert_ne!(a.body["id"], b.body["id"]);
    assert_eq!(app.sim.backups(PROJECT_B).len(), 1);
}

#[tokio::test]
async fn a_request_still_being_answered_makes_its_key_409() {
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/snapshots").await;
    app.sim.inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::Delay(Duration::from_millis(800)),
        times: 1,
    });
    let request = app
        .request(
            reqwest::Method::POST,
            &format!("/snapshots/{}/backups", snapshot('a', 1)),
            Some("tenant-a"),
        )
        .header("Idempotency-Key", "slow")
        .json(&json!({}));
    let first = tokio::spawn(async move { request.send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let second = app
        .create_with_key("tenant-a", &snapshot('a', 1), json!({}), "slow")
        .await;

    second.assert_problem(409, "idempotency-key-in-use");
    let first = first.await.expect("joined").expect("answered");
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let third = app
        .create_with_key("tenant-a", &snapshot('a', 1), json!({}), "slow")
        .await;
    assert_eq!(third.status, StatusCode::ACCEPTED, "{}", third.text);
    assert_eq!(app.sim.backups(PROJECT_A).len(), 1);
}

#[tokio::test]
async fn fifty_concurrent_identical_requests_with_one_key_make_one_job_and_one_backup() {
    let app = TestApp::spawn().await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let request = app
            .request(
                reqwest::Method::POST,
                &format!("/snapshots/{}/backups", snapshot('a', 1)),
                Some("tenant-a"),
            )
            .header("Idempotency-Key", "fifty")
            .json(&json!({"name": "once"}));
        requests.spawn(async move {
            let response = request.send().await.expect("answered");
            crate::helpers::Answer::read(response).await
        });
    }
    let answers = requests.join_all().await;

    let mut job_ids = std::collections::BTreeSet::new();
    for answer in &answers {
        match answer.status.as_u16() {
            202 => {
                job_ids.insert(answer.body["id"].as_str().expect("id").to_owned());
            }
            409 => answer.assert_problem(409, "idempotency-key-in-use"),
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    assert_eq!(job_ids.len(), 1, "one job: {job_ids:?}");
    assert_eq!(app.sim.backups(PROJECT_A).len(), 1);
    let jobs = app.get("tenant-a", "/jobs").await;
    assert_eq!(jobs.body["jobs"].as_array().expect("jobs").len(), 1);
}

#[tokio::test]
async fn a_refused_request_frees_its_key_for_a_retry() {
    let app = TestApp::spawn().await;
    app.sim.set_snapshot_status(&snapshot('a', 1), "creating");

    let refused = app
        .create_with_key("tenant-a", &snapshot('a', 1), json!({}), "retry-me")
        .await;
    app.sim.set_snapshot_status(&snapshot('a', 1), "available");
    let retried = app
        .create_with_key("tenant-a", &snapshot('a', 1), json!({}), "retry-me")
        .await;

    refused.assert_problem(409, "snapshot-not-available");
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.text);
}

#[tokio::test]
async fn malformed_keys_are_400() {
    let app = TestApp::spawn().await;
    for key in ["", "\"unterminated", "has space", &"k".repeat(256)] {
        let answer = app
            .create_with_key("tenant-a", &snapshot('a', 1), json!({}), key)
            .await;
        answer.assert_problem(400, "invalid-request");
    }
    assert!(app.sim.backups(PROJECT_A).is_empty());
}
