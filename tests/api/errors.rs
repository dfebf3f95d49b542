//! DESIGN.md's error table, row by row: each error a caller can cause is a
//! clear problem+json answer and changes nothing. The rows that the
//! scenarios also check on a real cloud (quota, incremental, reader-only
//! credential, refused credentials, concurrent creates) are in `scenarios`.

use openstack_sim::{Fault, FaultKind, Op};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PROJECT_A, TestApp, snapshot};

/// Asserts that tenant-a has no job and Cinder no new backup.
async fn assert_nothing_changed(app: &TestApp) {
    let jobs = app.get("tenant-a", "/jobs").await;
    assert_eq!(jobs.body["jobs"], json!([]), "no job left behind");
    assert!(app.sim.backups(PROJECT_A).is_empty(), "no backup made");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = TestApp::spawn().await;
    let answer = crate::helpers::Answer::read(
        app.request(
            Method::POST,
            &format!("/snapshots/{}/backups", snapshot('a', 1)),
            Some("tenant-a"),
        )
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("sent"),
    )
    .await;
    answer.assert_problem(400, "invalid-request");
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn unknown_or_mistyped_fields_are_400() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"nmae": "typo"}),
        json!({"incremental": "maybe"}),
        json!({"metadata": {"team": 1}}),
        json!({"volume_id": "the gateway reads it from the snapshot"}),
    ] {
        let answer = app
            .create_backup("tenant-a", &snapshot('a', 1), body.clone())
            .await;
        answer.assert_problem(400, "invalid-request");
    }
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_400_in_the_apis_own_words() {
    let app = TestApp::spawn().await;
    for body in [
        json!([]),
        json!([{"name": "x"}]),
        json!("text"),
        json!(7),
        json!(true),
    ] {
        let answer = app
            .create_backup("tenant-a", &snapshot('a', 1), body.clone())
            .await;
        answer.assert_problem(400, "invalid-request");
        let detail = answer.body["detail"].as_str().unwrap_or("");
        assert!(detail.contains("JSON object"), "{body}: {detail}");
        for internal in ["struct", "CreateBackupRequest", "sequence"] {
            assert!(!detail.contains(internal), "{body}: {detail}");
        }
    }
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn a_null_body_is_400_and_an_empty_one_a_create_with_no_options() {
    // The document's body is an object, or none at all: `null` is neither
    // (a generated client that sends no body sends nothing, not `null`).
    let app = TestApp::spawn().await;
    let null = app
        .create_backup("tenant-a", &snapshot('a', 1), Value::Null)
        .await;
    null.assert_problem(400, "invalid-request");
    assert_nothing_changed(&app).await;

    let empty = crate::helpers::Answer::read(
        app.request(
            reqwest::Method::POST,
            &format!("/snapshots/{}/backups", snapshot('a', 1)),
            Some("tenant-a"),
        )
        .header("content-type", "application/json")
        .send()
        .await
        .expect("sent"),
    )
    .await;
    assert_eq!(
        empty.status,
        reqwest::StatusCode::ACCEPTED,
        "{}",
        empty.text
    );
    assert_eq!(empty.body["request"], json!({}), "{}", empty.text);
}

#[tokio::test]
async fn the_gateways_metadata_key_and_overlong_fields_are_400() {
    let app = TestApp::spawn().await;
    for body in [
        json!({"metadata": {"gateway_job_id": "mine"}}),
        json!({"metadata": {"bad*key": "x"}}),
        json!({"name": "n".repeat(256)}),
        json!({"availability_zone": ""}),
        json!({"metadata": (0..51).map(|n| (format!("k{n}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
    ] {
        let answer = app.create_backup("tenant-a", &snapshot('a', 1), body).await;
        answer.assert_problem(400, "invalid-request");
    }
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let body = json!({"description": "x".repeat(100 * 1024)});
    let answer = app.create_backup("tenant-a", &snapshot('a', 1), body).await;
    answer.assert_problem(413, "payload-too-large");
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("65536 bytes")),
        "the limit is named: {}",
        answer.text
    );
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn caller_supplied_values_echoed_in_problems_are_cut_short() {
    let app = TestApp::spawn().await;
    let long_tenant = "t".repeat(500);
    let long_job = "j".repeat(500);

    let tenant = app.get(&long_tenant, "/jobs").await;
    let job = app.get("tenant-a", &format!("/jobs/{long_job}")).await;

    tenant.assert_problem(403, "tenant-not-configured");
    job.assert_problem(404, "job-not-found");
    for answer in [tenant, job] {
        let detail = answer.body["detail"].as_str().expect("detail");
        assert!(detail.chars().count() < 150, "{detail}");
        assert!(detail.contains('…'), "{detail}");
    }
}

#[tokio::test]
async fn missing_or_invalid_tokens_are_401_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let path = format!("/snapshots/{}/backups", snapshot('a', 1));
    let mut expired = crate::helpers::caller_claims("tenant-a");
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    let expired = backup_gateway::auth::sign_hs256(
        &secrecy::SecretString::from(crate::helpers::JWT_SECRET.to_owned()),
        &expired,
    )
    .expect("sign");
    let forged = backup_gateway::auth::sign_hs256(
        &secrecy::SecretString::from("not-the-secret".to_owned()),
        &crate::helpers::caller_claims("tenant-a"),
    )
    .expect("sign");
    for auth in [
        None,
        Some("Bearer not-a-jwt".to_owned()),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {forged}")),
    ] {
        let mut request = app.client.post(format!("{}{path}", app.address));
        if let Some(auth) = &auth {
            request = request.header("authorization", auth);
        }
        let answer = crate::helpers::Answer::read(request.send().await.expect("sent")).await;
        answer.assert_problem(401, "unauthenticated");
        assert!(
            answer
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer")),
            "{auth:?}"
        );
    }
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn a_tenant_without_credentials_is_403() {
    let app = TestApp::spawn().await;
    let answer = app
        .create_backup("tenant-unknown", &snapshot('a', 1), json!({}))
        .await;
    answer.assert_problem(403, "tenant-not-configured");
}

#[tokio::test]
async fn a_missing_snapshot_is_404_with_cinders_request_id() {
    let app = TestApp::spawn().await;
    let answer = app
        .create_backup(
            "tenant-a",
            "00000000-0000-4000-8000-000000000000",
            json!({}),
        )
        .await;
    answer.assert_problem(404, "snapshot-not-found");
    assert_eq!(answer.body["upstream_status"], 404);
    assert!(
        answer.body["upstream_request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("req-"))
    );
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn a_snapshot_that_is_not_available_is_409() {
    let app = TestApp::spawn().await;
    app.sim.set_snapshot_status(&snapshot('a', 1), "backing-up");
    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;
    answer.assert_problem(409, "snapshot-not-available");
    assert!(
        answer.body["detail"]
            .as_str()
            .expect("detail")
            .contains("backing-up")
    );
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn a_second_create_for_a_busy_snapshot_is_409_naming_the_job() {
    let app = TestApp::spawn().await;
    let first = app.create_ok("tenant-a", &snapshot('a', 1)).await;

    let second = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;

    second.assert_problem(409, "snapshot-busy");
    assert_eq!(second.body["job_id"], first["id"]);
    assert_eq!(app.sim.backups(PROJECT_A).len(), 1);
    assert_eq!(
        app.get("tenant-a", "/jobs").await.body["jobs"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn an_unreachable_cinder_at_the_snapshot_read_is_503_with_retry_after_and_nothing_recorded() {
    let app = TestApp::spawn().await;
    // Warm the token so that the fault hits the snapshot read.
    app.get("tenant-a", "/jobs").await;
    app.sim.inject(Fault {
        op: Op::SnapshotShow,
        kind: FaultKind::Status(503),
        times: 1,
    });

    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;

    answer.assert_problem(503, "upstream-unavailable");
    assert!(answer.header("retry-after").is_some());
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn another_tenants_job_and_snapshot_are_404() {
    let app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let job_id = job["id"].as_str().expect("id");

    app.get("tenant-b", &format!("/jobs/{job_id}"))
        .await
        .assert_problem(404, "job-not-found");
    app.get("tenant-b", &format!("/snapshots/{}", snapshot('a', 1)))
        .await
        .assert_problem(404, "snapshot-not-found");
    app.create_backup("tenant-b", &snapshot('a', 2), json!({}))
        .await
        .assert_problem(404, "snapshot-not-found");
    let listed = app.get("tenant-b", "/jobs").await;
    assert_eq!(listed.body["jobs"], json!([]));
    app.get("tenant-a", "/jobs/not-a-uuid")
        .await
        .assert_problem(404, "job-not-found");
}

#[tokio::test]
async fn unknown_routes_methods_and_bad_queries_are_problems() {
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/nowhere")
        .await
        .assert_problem(404, "not-found");
    let answer = crate::helpers::Answer::read(
        app.request(Method::DELETE, "/jobs", Some("tenant-a"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    answer.assert_problem(405, "method-not-allowed");
    app.get("tenant-a", "/jobs?limit=0")
        .await
        .assert_problem(400, "invalid-request");
    app.get("tenant-a", "/jobs?state=sleeping")
        .await
        .assert_problem(400, "invalid-request");
    app.get("tenant-a", "/jobs?page_token=garbage")
        .await
        .assert_problem(400, "invalid-request");
    app.get("tenant-a", "/jobs?colour=red")
        .await
        .assert_problem(400, "invalid-request");
    app.get("tenant-a", "/snapshots?limit=5000")
        .await
        .assert_problem(400, "invalid-request");
    app.get("tenant-a", "/jobs/whatever?wait=61")
        .await
        .assert_problem(400, "invalid-request");
    app.get("tenant-a", "/jobs/whatever?wait=4294967295")
        .await
        .assert_problem(400, "invalid-request");
    let answer = app.get("tenant-a", "/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn cinder_refusing_a_fresh_token_is_502_upstream_auth_failed() {
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/jobs").await;
    app.sim.inject(Fault {
        op: Op::SnapshotShow,
        kind: FaultKind::Status(401),
        times: 2,
    });

    let answer = app
        .get("tenant-a", &format!("/snapshots/{}", snapshot('a', 1)))
        .await;

    answer.assert_problem(502, "upstream-auth-failed");
    assert_eq!(
        app.sim.calls(Op::SnapshotShow),
        2,
        "retried once with a new token"
    );
}

#[tokio::test]
async fn an_answer_cinder_should_not_give_is_502_upstream_unexpected() {
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/jobs").await;
    app.sim.inject(Fault {
        op: Op::SnapshotShow,
        kind: FaultKind::Status(409),
        times: 1,
    });

    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;

    answer.assert_problem(502, "upstream-unexpected");
    assert_eq!(answer.body["upstream_status"], 409);
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn dot_segments_are_not_snapshot_ids() {
    // HTTP clients normalise `%2E%2E` away; curl --path-as-is and raw
    // sockets do not, so the gateway must not pass it on to Cinder.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    for (method, path) in [
        ("GET", "/snapshots/%2E%2E"),
        ("GET", "/snapshots/%2E/backups"),
        ("POST", "/snapshots/%2E%2E/backups"),
    ] {
        let mut socket = tokio::net::TcpStream::connect(&host)
            .await
            .expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            app.token("tenant-a")
        );
        socket.write_all(request.as_bytes()).await.expect("send");
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.expect("read");
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{method} {path}: {answer}"
        );
        assert!(answer.contains("/problems/invalid-request"), "{answer}");
    }
    assert_eq!(app.sim.calls(Op::SnapshotShow), 0);
    assert_nothing_changed(&app).await;
}

#[tokio::test]
async fn a_cinder_refusal_of_a_read_is_an_unexpected_answer_not_a_refused_backup() {
    // Arrange: Cinder answers the snapshot read and the listing 400 and 413
    // (which, to a create, would mean a refused backup, a spent quota).
    let app = TestApp::spawn().await;
    for (op, status) in [(Op::SnapshotShow, 400), (Op::SnapshotList, 413)] {
        app.sim.inject(Fault {
            op,
            kind: FaultKind::Status(status),
            times: 1,
        });
    }

    // Act
    let shown = app
        .get("tenant-a", &format!("/snapshots/{}", snapshot('a', 1)))
        .await;
    let listed = app.get("tenant-a", "/snapshots").await;

    // Assert: documented for the reads, and in Cinder's words.
    shown.assert_problem(502, "upstream-unexpected");
    listed.assert_problem(502, "upstream-unexpected");
}

#[tokio::test]
async fn a_snapshot_listing_answered_404_by_cinder_is_an_unexpected_upstream_answer() {
    // A listing names no snapshot: Cinder's 404 there means its endpoint
    // is not what the catalog promised, not a missing snapshot.
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/jobs").await;
    app.sim.inject(Fault {
        op: Op::SnapshotList,
        kind: FaultKind::Status(404),
        times: 1,
    });

    let answer = app.get("tenant-a", "/snapshots").await;

    answer.assert_problem(502, "upstream-unexpected");
}
