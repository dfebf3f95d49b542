//! Retention: finished jobs and idempotency keys are purged after their
//! time; unfinished jobs never are.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, snapshot};

#[tokio::test]
async fn finished_jobs_and_old_keys_are_purged_and_unfinished_jobs_kept() {
    // Arrange: one finished job (with a key), one still running; the
    // finished one and its key are then made older than the defaults keep
    // them (30 days, 24 hours).
    let app = TestApp::spawn().await;
    let finished = app
        .create_with_key("tenant-a", &snapshot('a', 1), json!({}), "old-key")
        .await
        .body;
    app.finish_backups();
    app.cycle().await;
    let running = app.create_ok("tenant-a", &snapshot('a', 2)).await;
    // Time passed by hand, under the running gateway: the purge reads the
    // database, and a purge that removed rows drops the finished jobs the
    // gateway keeps in memory.
    let day_ms = 24 * 3600 * 1000_i64;
    app.store_sql(&format!(
        "UPDATE jobs SET finished_at = finished_at - {} WHERE finished_at IS NOT NULL",
        31 * day_ms
    ))
    .await;
    app.store_sql(&format!(
        "UPDATE idempotency_keys SET created_at = created_at - {}",
        day_ms + 1000
    ))
    .await;

    // Act
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
