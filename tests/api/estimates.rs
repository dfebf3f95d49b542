//! Expected completion: a running job expects to take what the tenant's
//! earlier backups of a similar size took per GiB, says so in its answer
//! and its events, and gets a new estimate when it runs past it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{
    events::EventStream,
    helpers::{TestApp, snapshot},
};

fn time(job: &Value, field: &str) -> DateTime<Utc> {
    job[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {job}"))
        .parse()
        .expect("a time")
}

fn id(job: &Value) -> String {
    job["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_running_job_expects_to_take_what_similar_backups_of_its_tenant_took() {
    // Arrange: one backup of tenant-a runs to its end.
    let app = TestApp::spawn().await;
    let first = app.create_ok("tenant-a", &snapshot('a', 2)).await;
    app.finish_backups();
    app.cycle().await;
    let done = app.job("tenant-a", &id(&first)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let mut events = EventStream::open_ok(&app, "tenant-a", "/events", None).await;

    // Act: the next backup, of a snapshot half the size.
    let second = app.create_ok("tenant-a", &snapshot('a', 3)).await;
    let other_tenant = app.create_ok("tenant-b", &snapshot('b', 1)).await;

    // Assert
    assert_eq!(
        first["expected_completion_at"],
        Value::Null,
        "no earlier backup: no estimate"
    );
    assert_eq!(done["expected_completion_at"], Value::Null, "ended");
    assert_eq!(first["size_gib"], 2, "{first}");
    assert_eq!(second["size_gib"], 1, "{second}");
    // Half the size: half the time, to the millisecond.
    let took = (time(&done, "finished_at") - time(&done, "started_at")).num_milliseconds();
    let expected =
        (time(&second, "expected_completion_at") - time(&second, "started_at")).num_milliseconds();
    assert!(
        (expected - took / 2).abs() <= 1,
        "{expected} ms for {took} ms: {second}"
    );
    assert_eq!(
        other_tenant["expected_completion_at"],
        Value::Null,
        "another tenant's history is its own"
    );
    let running = events.take(3).await;
    assert_eq!(running[2].1, "job.running");
    let running = events_data(
        &mut EventStream::open_ok(
            &app,
            "tenant-a",
            &format!("/events?job_id={}", id(&second)),
            Some("0"),
        )
        .await,
    )
    .await;
    assert_eq!(
        running["expected_completion_at"], second["expected_completion_at"],
        "the running event carries the estimate"
    );
}

/// The data of the third event of a job's stream (`job.running`).
async fn events_data(stream: &mut EventStream) -> Value {
    let mut last = Value::Null;
    for _ in 0..3 {
        last = stream.next().await.expect("an event").data["data"].clone();
    }
    assert_eq!(last["state"], "running", "{last}");
    last
}

#[tokio::test]
async fn a_job_running_past_its_estimate_gets_a_new_one_and_the_stream_says_so() {
    // Arrange: a first backup sets the tenant's pace; the second is still
    // creating once its estimate has passed.
    let app = TestApp::spawn().await;
    let first = app.create_ok("tenant-a", &snapshot('a', 2)).await;
    app.finish_backups();
    app.cycle().await;
    let second = app.create_ok("tenant-a", &snapshot('a', 3)).await;
    let expected = time(&second, "expected_completion_at");
    let mut stream = EventStream::open_ok(
        &app,
        "tenant-a",
        &format!("/events?job_id={}", id(&second)),
        None,
    )
    .await;
    let wait = (expected - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_millis(50)).await;

    // Act
    app.cycle().await;

    // Assert: its one similar backup is also the slowest: past that too,
    // there is no estimate left.
    let revised = stream.next().await.expect("an event");
    assert_eq!(revised.event, "job.estimate_changed", "{revised:?}");
    assert_eq!(revised.data["data"]["state"], "running");
    assert_eq!(revised.data["data"]["expected_completion_at"], Value::Null);
    let job = app.job("tenant-a", &id(&second)).await;
    assert_eq!(job["state"], "running");
    assert_eq!(job["expected_completion_at"], Value::Null);
    // A later cycle changes nothing more.
    app.cycle().await;
    assert!(
        stream
            .next_block(std::time::Duration::from_millis(300))
            .await
            .is_none()
    );
    drop(first);
}
