//! The one call the gateway exists for, from `202` to the job's end.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PROJECT_A, TestApp, snapshot, volume};

#[tokio::test]
async fn create_backup_returns_202_with_location_and_the_job_runs_to_succeeded() {
    // Arrange
    let app = TestApp::spawn().await;
    let snapshot_id = snapshot('a', 1);

    // Act
    let answer = app
        .create_backup(
            "tenant-a",
            &snapshot_id,
            json!({"name": "nightly", "description": "before the upgrade", "metadata": {"team": "db"}}),
        )
        .await;

    // Assert: accepted, with the job and where to follow it
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    let job = answer.body;
    let job_id = job["id"].as_str().expect("job id").to_owned();
    assert_eq!(
        answer.headers["location"],
        format!("/jobs/{job_id}").as_str()
    );
    assert!(answer.headers.contains_key("retry-after"));
    assert_eq!(job["state"], "running");
    assert_eq!(job["done"], false);
    assert_eq!(job["snapshot_id"], snapshot_id);
    assert_eq!(
        job["volume_id"],
        volume('a', 1),
        "the volume is read from the snapshot"
    );
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["request"]["name"], "nightly");
    let backup_id = job["backup_id"].as_str().expect("backup id").to_owned();

    // The backup in Cinder carries the request's fields and the job id.
    let backups = app.sim.backups(PROJECT_A);
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0]["id"], backup_id);
    assert_eq!(backups[0]["name"], "nightly");
    assert_eq!(backups[0]["description"], "before the upgrade");
    assert_eq!(backups[0]["snapshot_id"], snapshot_id);
    assert_eq!(backups[0]["metadata"]["gateway_job_id"], job_id);
    assert_eq!(backups[0]["metadata"]["team"], "db");
    assert_eq!(
        app.sim.snapshot_status(&snapshot_id).as_deref(),
        Some("backing-up")
    );

    // Still running while Cinder is `creating`.
    app.cycle().await;
    assert_eq!(app.job("tenant-a", &job_id).await["state"], "running");

    // Act: Cinder finishes, the worker notices.
    app.finish_backups();
    app.cycle().await;

    // Assert
    let job = app.job("tenant-a", &job_id).await;
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["done"], true);
    assert!(job["finished_at"].is_string());
    assert!(job["error"].is_null());
    assert_eq!(
        app.sim.snapshot_status(&snapshot_id).as_deref(),
        Some("available")
    );
}

#[tokio::test]
async fn a_backup_that_ends_in_error_fails_the_job_with_cinders_reason() {
    let app = TestApp::spawn().await;
    app.sim
        .fail_backups(Some("Backup driver failed: disk full".into()));
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let job_id = job["id"].as_str().expect("id");

    app.finish_backups();
    app.cycle().await;

    let job = app.job("tenant-a", job_id).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["error"]["type"], "/problems/backup-failed");
    assert!(
        job["error"]["upstream_request_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("req-")),
        "{job}"
    );
    assert!(
        job["error"]["detail"]
            .as_str()
            .expect("detail")
            .contains("Backup driver failed: disk full"),
        "{job}"
    );
}

#[tokio::test]
async fn an_unknown_availability_zone_fails_later_and_the_stuck_snapshot_is_reported() {
    // Cinder accepts an unknown zone with 202, fails the backup, and leaves
    // the snapshot `backing-up` (recorded exchanges 23-25).
    let app = TestApp::spawn().await;
    let snapshot_id = snapshot('a', 2);
    let answer = app
        .create_backup(
            "tenant-a",
            &snapshot_id,
            json!({"availability_zone": "nowhere"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    let job_id = answer.body["id"].as_str().expect("id").to_owned();

    app.finish_backups();
    app.cycle().await;

    let job = app.job("tenant-a", &job_id).await;
    assert_eq!(job["state"], "failed");
    let detail = job["error"]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("Service not found for creating backup."),
        "{detail}"
    );
    assert!(detail.contains("backing-up"), "{detail}");
    let view = app
        .get("tenant-a", &format!("/snapshots/{snapshot_id}"))
        .await;
    assert_eq!(view.body["status"], "backing-up");
}

#[tokio::test]
async fn an_empty_body_is_a_backup_with_cinders_defaults() {
    let app = TestApp::spawn().await;
    let response = app
        .request(
            reqwest::Method::POST,
            &format!("/snapshots/{}/backups", snapshot('b', 1)),
            Some("tenant-b"),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_lost_cinder_answer_leaves_the_job_queued_and_the_worker_adopts_the_backup() {
    // Cinder creates the backup but the connection drops before its 202.
    let app = TestApp::spawn_with(&["--upstream-timeout", "700ms"]).await;
    app.sim.inject(openstack_sim::Fault {
        op: openstack_sim::Op::BackupCreate,
        kind: openstack_sim::FaultKind::DropAfterWork,
        times: 1,
    });

    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;

    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(answer.body["state"], "queued");
    assert_eq!(answer.body["attempts"], 1);
    assert_eq!(
        answer.body["error"]["type"],
        "/problems/upstream-unavailable"
    );
    assert!(answer.headers.contains_key("retry-after"));
    let job_id = answer.body["id"].as_str().expect("id").to_owned();

    // The worker looks for the backup by the job id before posting again,
    // once Cinder is surely done with the lost request (twice the upstream
    // time limit after it).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    app.cycle().await;

    let job = app.job("tenant-a", &job_id).await;
    assert_eq!(job["state"], "running", "{job}");
    let backups = app.sim.backups(PROJECT_A);
    assert_eq!(backups.len(), 1, "no second backup");
    assert_eq!(job["backup_id"], backups[0]["id"]);
    assert_eq!(app.sim.calls(openstack_sim::Op::BackupCreate), 1);
}

#[tokio::test]
async fn a_failing_cinder_is_retried_until_it_accepts() {
    let app = TestApp::spawn().await;
    app.sim.inject(openstack_sim::Fault {
        op: openstack_sim::Op::BackupCreate,
        kind: openstack_sim::FaultKind::Status(503),
        times: 2,
    });

    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(answer.body["state"], "queued");
    assert_eq!(answer.body["error"]["upstream_status"], 503);
    let job_id = answer.body["id"].as_str().expect("id").to_owned();

    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        app.cycle().await;
    }

    let job = app.job("tenant-a", &job_id).await;
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(job["attempts"], 3);
    assert!(job["error"].is_null());
}

#[tokio::test]
async fn retries_end_with_a_failed_job_carrying_the_last_upstream_reason() {
    let app = TestApp::spawn_with(&["--submit-attempts", "2"]).await;
    app.sim.inject(openstack_sim::Fault {
        op: openstack_sim::Op::BackupCreate,
        kind: openstack_sim::FaultKind::Status(500),
        times: 10,
    });
    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;
    let job_id = answer.body["id"].as_str().expect("id").to_owned();

    // The second attempt, then the listing that shows neither 500 made a
    // backup: only then may the job fail.
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        app.cycle().await;
    }

    let job = app.job("tenant-a", &job_id).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempts"], 2);
    assert_eq!(app.sim.calls(openstack_sim::Op::BackupCreate), 2);
    assert_eq!(job["error"]["upstream_status"], 500);
    assert!(
        job["error"]["detail"]
            .as_str()
            .expect("detail")
            .contains("gave up after 2 attempts")
    );
    // The snapshot is free for a new try.
    let again = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
}

#[tokio::test]
async fn a_backup_deleted_in_cinder_while_running_fails_the_job() {
    let app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let backup_id = job["backup_id"].as_str().expect("backup id");

    app.sim.delete_backup(backup_id);
    app.cycle().await;

    let job = app.job("tenant-a", job["id"].as_str().expect("id")).await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["error"]["type"], "/problems/backup-deleted");
}

#[tokio::test]
async fn long_poll_answers_when_the_job_changes() {
    let app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let job_id = job["id"].as_str().expect("id").to_owned();
    let waiting = {
        // Far shorter than the wait: an answer only comes in time if the
        // change wakes the long poll.
        let request = app
            .request(
                reqwest::Method::GET,
                &format!("/jobs/{job_id}?wait=60"),
                Some("tenant-a"),
            )
            .timeout(std::time::Duration::from_secs(20));
        tokio::spawn(async move {
            request
                .send()
                .await
                .expect("sent")
                .json::<serde_json::Value>()
                .await
        })
    };

    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    app.finish_backups();
    app.cycle().await;

    let seen = waiting.await.expect("task").expect("json");
    assert_eq!(seen["state"], "succeeded");
}

#[tokio::test]
async fn snapshot_backups_lists_the_jobs_and_cinders_backups_of_the_snapshot() {
    let app = TestApp::spawn().await;
    let snapshot_id = snapshot('a', 1);
    let job = app.create_ok("tenant-a", &snapshot_id).await;
    // A backup of another snapshot is not listed.
    app.create_ok("tenant-a", &snapshot('a', 2)).await;

    let answer = app
        .get("tenant-a", &format!("/snapshots/{snapshot_id}/backups"))
        .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["snapshot"]["id"], snapshot_id);
    let jobs = answer.body["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["id"], job["id"]);
    let backups = answer.body["backups"].as_array().expect("backups");
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0]["id"], job["backup_id"]);
    assert_eq!(backups[0]["job_id"], job["id"]);
}

#[tokio::test]
async fn a_cloud_older_than_3_43_refuses_creates_with_502_and_records_nothing() {
    let mut cloud = TestApp::sim_config(std::time::Duration::from_secs(3600));
    cloud.max_microversion = openstack_sim::Microversion {
        major: 3,
        minor: 40,
    };
    let app = TestApp::spawn_on(cloud, &[]).await;

    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;

    answer.assert_problem(502, "microversion-unsupported");
    let detail = answer.body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("3.40") && detail.contains("3.43"),
        "{detail}"
    );
    assert_eq!(app.get("tenant-a", "/jobs").await.body["jobs"], json!([]));
    assert!(app.sim.backups(PROJECT_A).is_empty());
    // Reading snapshots needs no microversion and still works.
    assert_eq!(
        app.get("tenant-a", "/snapshots").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_availability_zone_needs_3_51_and_the_rest_works_without_it() {
    let mut cloud = TestApp::sim_config(std::time::Duration::from_secs(3600));
    cloud.max_microversion = openstack_sim::Microversion {
        major: 3,
        minor: 50,
    };
    let app = TestApp::spawn_on(cloud, &[]).await;

    let with_zone = app
        .create_backup(
            "tenant-a",
            &snapshot('a', 1),
            json!({"availability_zone": "nova"}),
        )
        .await;
    with_zone.assert_problem(502, "microversion-unsupported");
    assert!(
        with_zone.body["detail"]
            .as_str()
            .expect("detail")
            .contains("3.51")
    );

    let without = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;
    assert_eq!(without.status, StatusCode::ACCEPTED, "{}", without.text);
}

#[tokio::test]
async fn a_snapshot_deleted_while_its_job_is_queued_fails_the_job_with_cinders_404() {
    let app = TestApp::spawn().await;
    app.sim.inject(openstack_sim::Fault {
        op: openstack_sim::Op::BackupCreate,
        kind: openstack_sim::FaultKind::Status(503),
        times: 1,
    });
    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;
    assert_eq!(answer.body["state"], "queued", "{}", answer.text);

    app.sim.delete_snapshot(&snapshot('a', 1));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.cycle().await;

    let job = app
        .job("tenant-a", answer.body["id"].as_str().expect("id"))
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["type"], "/problems/snapshot-not-found");
    assert_eq!(job["error"]["upstream_status"], 404);
}

#[tokio::test]
async fn a_backup_creating_past_the_limit_fails_as_stuck_and_keeps_its_id() {
    let app = TestApp::spawn_with(&["--stuck-after", "1ms"]).await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.cycle().await;

    let seen = app.job("tenant-a", job["id"].as_str().expect("id")).await;
    assert_eq!(seen["state"], "failed", "{seen}");
    assert_eq!(seen["error"]["type"], "/problems/backup-stuck");
    assert_eq!(seen["backup_id"], job["backup_id"]);
    assert_eq!(
        app.sim.backups(PROJECT_A)[0]["status"],
        "creating",
        "left for the operator"
    );
}

#[tokio::test]
async fn a_snapshot_that_turns_busy_between_read_and_post_is_409_and_leaves_no_job() {
    // Cinder's own status check answers 400 "must be available" when another
    // client takes the snapshot after the gateway read it.
    let app = TestApp::spawn().await;
    app.sim.inject(openstack_sim::Fault {
        op: openstack_sim::Op::BackupCreate,
        kind: openstack_sim::FaultKind::Delay(std::time::Duration::from_millis(500)),
        times: 1,
    });
    let request = app
        .request(
            reqwest::Method::POST,
            &format!("/snapshots/{}/backups", snapshot('a', 1)),
            Some("tenant-a"),
        )
        .json(&json!({}));
    let pending = tokio::spawn(async move { request.send().await.expect("sent") });
    while app.sim.calls(openstack_sim::Op::BackupCreate) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    app.sim.set_snapshot_status(&snapshot('a', 1), "backing-up");

    let answer = crate::helpers::Answer::read(pending.await.expect("task")).await;

    answer.assert_problem(409, "snapshot-not-available");
    assert_eq!(answer.body["upstream_status"], 400);
    assert_eq!(app.get("tenant-a", "/jobs").await.body["jobs"], json!([]));
    assert!(app.sim.backups(PROJECT_A).is_empty());
}
