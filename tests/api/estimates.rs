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

/// Backs up `snapshot_id` of tenant-a to its end, `taking` about that long.
async fn back_up(app: &TestApp, snapshot_id: &str, taking: std::time::Duration) -> Value {
    let job = app.create_ok("tenant-a", snapshot_id).await;
    tokio::time::sleep(taking).await;
    app.finish_backups();
    app.cycle().await;
    let done = app.job("tenant-a", &id(&job)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    done
}

/// The event stream of one job of tenant-a, from now on.
async fn events_of(app: &TestApp, job: &Value) -> EventStream {
    EventStream::open_ok(
        app,
        "tenant-a",
        &format!("/events?job_id={}", id(job)),
        None,
    )
    .await
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
    // 3 GiB: like the 2 GiB backup, were it tenant-a's.
    let other_tenant = app.create_ok("tenant-b", &snapshot('b', 2)).await;

    // Assert
    assert_eq!(
        first["expected_completion_at"],
        Value::Null,
        "no earlier backup: no estimate"
    );
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
    back_up(&app, &snapshot('a', 2), std::time::Duration::ZERO).await;
    let second = app.create_ok("tenant-a", &snapshot('a', 3)).await;
    let mut stream = events_of(&app, &second).await;
    sleep_past(time(&second, "expected_completion_at")).await;

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
}

#[tokio::test]
async fn past_the_usual_estimate_the_slowest_similar_backup_gives_the_next_then_none() {
    // Arrange: two backups of tenant-a, one fast, one of about a second;
    // then a third, expected to take their median rate.
    let app = TestApp::spawn().await;
    let fast = back_up(&app, &snapshot('a', 2), std::time::Duration::ZERO).await;
    let slow = back_up(&app, &snapshot('a', 3), std::time::Duration::from_secs(1)).await;
    let third = app.create_ok("tenant-a", &snapshot('a', 2)).await;
    let mut stream = events_of(&app, &third).await;
    let usual = time(&third, "expected_completion_at");

    // Act: a look once the usual estimate has passed.
    sleep_past(usual).await;
    app.cycle().await;
    let revised = stream.next().await.expect("a new estimate");

    // ...and one once the slowest has passed too.
    let slowest: DateTime<Utc> = revised.data["data"]["expected_completion_at"]
        .as_str()
        .expect("a later estimate")
        .parse()
        .expect("a time");
    sleep_past(slowest).await;
    app.cycle().await;
    let gone = stream.next().await.expect("no estimate left");

    // Assert: 2 GiB at the slower backup's rate (it took a second for 1 GiB).
    assert_eq!(revised.event, "job.estimate_changed");
    assert!(slowest > usual, "{slowest} after {usual}");
    let rate = |job: &Value| {
        (time(job, "finished_at") - time(job, "started_at")).num_milliseconds() as f64
            / job["size_gib"].as_f64().expect("size")
    };
    let expected_ms = (rate(&slow).max(rate(&fast)) * 2.0).round();
    assert_eq!(
        (slowest - time(&third, "started_at")).num_milliseconds() as f64,
        expected_ms
    );
    assert_eq!(gone.event, "job.estimate_changed");
    assert_eq!(gone.data["data"]["expected_completion_at"], Value::Null);
}

/// Sleeps until just past `at`.
async fn sleep_past(at: DateTime<Utc>) {
    let wait = (at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_millis(50)).await;
}

#[tokio::test]
async fn after_a_restart_the_history_is_read_from_the_store_and_the_worker_gives_the_estimate() {
    // Arrange: a backup of tenant-a took two seconds before the restart;
    // the new process holds no history.
    let mut app = TestApp::spawn().await;
    let first = back_up(&app, &snapshot('a', 2), std::time::Duration::from_secs(2)).await;
    app.restart().await;

    // Act: the create is answered from memory (nothing read yet), and the
    // worker's next look has the history.
    let second = app.create_ok("tenant-a", &snapshot('a', 3)).await;
    let mut stream = events_of(&app, &second).await;
    app.cycle().await;

    // Assert
    assert_eq!(second["expected_completion_at"], Value::Null, "{second}");
    let given = stream.next().await.expect("an estimate");
    assert_eq!(given.event, "job.estimate_changed");
    let took = (time(&first, "finished_at") - time(&first, "started_at")).num_milliseconds();
    let expected: DateTime<Utc> = given.data["data"]["expected_completion_at"]
        .as_str()
        .expect("an estimate")
        .parse()
        .expect("a time");
    // Half the size: half the time (a second, ahead of the cycle: an
    // estimate already past is not given).
    assert_eq!(
        (expected - time(&second, "started_at")).num_milliseconds(),
        (took as f64 / 2.0).round() as i64
    );
}
