//! Retention: finished jobs and idempotency keys are purged after their
//! time; unfinished jobs never are.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, snapshot};

#[tokio::test]
async fn finished_jobs_and_old_keys_are_purged_and_unfinished_jobs_kept() {
    // Arrange: one finished job (with a key), one still running.
    let app = TestApp::spawn_with(&["--retention", "50ms", "--idempotency-ttl", "50ms"]).await;
    let finished = app
        .create_with_key("tenant-a", &snapshot('a', 1), json!({}), "old-key")
        .await
        .body;
    app.finish_backups();
    app.cycle().await;
    let running = app.create_ok("tenant-a", &snapshot('a', 2)).await;

    // Act
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let purged = app.purge().await;

    // Assert
    assert_eq!((purged.jobs, purged.keys), (1, 1));
    let gone = app
        .get(
            "tenant-a",
            &format!("/jobs/{}", finished["id"].as_str().expect("id")),
        )
        .await;
    gone.assert_problem(404, "job-not-found");
    let kept = app
        .job("tenant-a", running["id"].as_str().expect("id"))
        .await;
    assert_eq!(kept["state"], "running");
    // The key is free again: the same request makes a new job.
    let reused = app
        .create_with_key("tenant-a", &snapshot('a', 1), json!({}), "old-key")
        .await;
    assert_eq!(reused.status, StatusCode::ACCEPTED, "{}", reused.text);
    assert_ne!(reused.body["id"], finished["id"]);
}

#[tokio::test]
async fn recent_finished_jobs_are_kept() {
    let app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    app.finish_backups();
    app.cycle().await;

    let purged = app.purge().await;

    assert_eq!((purged.jobs, purged.keys), (0, 0));
    app.job("tenant-a", job["id"].as_str().expect("id")).await;
}
