//! `GET /events`: the tenant's job events as Server-Sent Events, read by a
//! real client over TCP: every change in order, nothing of other tenants,
//! resuming with `Last-Event-ID` (also across a restart), filters,
//! heartbeats, the per-tenant cap, and the end at shutdown.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Answer, Gateway, TestApp, snapshot};

/// Longest wait for one event in these tests (the gateway sends each as
/// soon as it is written; this only bounds a failing test).
const EVENT_WAIT: Duration = Duration::from_secs(20);

/// An open event stream, read block by block.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

/// One event as the stream carried it.
#[derive(Debug)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Value,
}

impl EventStream {
    /// `GET path` (`/events...`) as `tenant`, with `Last-Event-ID` when
    /// given; the refusal when the answer is not a stream.
    pub async fn open(
        gateway: &Gateway,
        tenant: &str,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, Answer> {
        let mut request = gateway.request(Method::GET, path, Some(tenant));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("answered");
        if response.status() != StatusCode::OK {
            return Err(Answer::read(response).await);
        }
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an event stream"
        );
        assert_eq!(response.headers()["cache-control"], "no-cache");
        Ok(EventStream {
            response,
            buffer: String::new(),
        })
    }

    /// Opens a stream that must be answered 200, its opening frame (where
    /// it starts) still unread.
    pub async fn open_raw(
        gateway: &Gateway,
        tenant: &str,
        path: &str,
        last_event_id: Option<&str>,
    ) -> EventStream {
        match Self::open(gateway, tenant, path, last_event_id).await {
            Ok(stream) => stream,
            Err(answer) => panic!("not a stream: {} {}", answer.status, answer.text),
        }
    }

    /// Opens a stream that must be answered 200, past its opening frame.
    pub async fn open_ok(
        gateway: &Gateway,
        tenant: &str,
        path: &str,
        last_event_id: Option<&str>,
    ) -> EventStream {
        let mut stream = Self::open_raw(gateway, tenant, path, last_event_id).await;
        let start = stream.next_block(EVENT_WAIT).await.unwrap_or_default();
        assert!(
            start.starts_with("id: ") && !start.contains('\n'),
            "a stream opens with where it starts: {start:?}"
        );
        stream
    }

    /// The next block (the lines up to a blank line); `None` when the
    /// stream ended, or nothing came within `limit`.
    pub async fn next_block(&mut self, limit: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block = self.buffer[..end].to_owned();
                self.buffer.drain(..end + 2);
                return Some(block);
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// The next event, heartbeats skipped; `None` when the stream ended or
    /// no event came within [`EVENT_WAIT`].
    pub async fn next(&mut self) -> Option<SseEvent> {
        // One limit for all blocks: heartbeats must not wait it out anew.
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let block = self.next_block(left).await?;
            let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if data.is_empty() {
                continue;
            }
            let data = serde_json::from_str(&data).expect("data is JSON");
            return Some(SseEvent { id, event, data });
        }
    }

    /// The next `n` events: `(id, event name, job id)` each.
    pub async fn take(&mut self, n: usize) -> Vec<(String, String, String)> {
        let mut events = Vec::new();
        for _ in 0..n {
            let event = self.next().await.expect("an event");
            assert_eq!(event.data["type"], event.event.as_str(), "{:?}", event);
            events.push((
                event.id,
                event.event,
                event.data["data"]["job_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
        events
    }
}

fn triples(events: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

fn id_of(job: &Value) -> String {
    job["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_stream_carries_each_change_of_the_tenants_jobs_in_order_and_nothing_of_others() {
    let app = TestApp::spawn().await;
    let mut stream_a = EventStream::open_ok(&app, "tenant-a", "/events", None).await;
    let mut stream_b = EventStream::open_ok(&app, "tenant-b", "/events", None).await;

    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let id = id_of(&job);
    let first = stream_a.next().await.expect("created");
    let rest = stream_a.take(2).await;
    app.finish_backups();
    app.cycle().await;
    let last = stream_a.next().await.expect("succeeded");
    let job_b = app.create_ok("tenant-b", &snapshot('b', 1)).await;
    let first_b = stream_b.next().await.expect("b's first event");

    assert_eq!(first.id, "1");
    assert_eq!(first.event, "job.created");
    assert_eq!(first.data["data"]["job_id"], id.as_str());
    assert_eq!(first.data["data"]["snapshot_id"], snapshot('a', 1).as_str());
    assert_eq!(first.data["data"]["state"], "queued");
    assert!(first.data["timestamp"].is_string(), "{:?}", first);
    assert_eq!(
        rest,
        triples(&[("2", "job.submitted", &id), ("3", "job.running", &id)])
    );
    assert_eq!(last.id, "4");
    assert_eq!(last.event, "job.succeeded");
    assert_eq!(last.data["data"]["state"], "succeeded");
    assert_eq!(last.data["data"]["backup_id"], job["backup_id"]);
    assert_eq!(last.data["data"]["error"], Value::Null);
    // tenant-b's stream saw none of tenant-a's four events: its first is
    // its own job's, numbered among its own events.
    assert_eq!(first_b.id, "1");
    assert_eq!(first_b.data["data"]["job_id"], job_b["id"]);
}

#[tokio::test]
async fn last_event_id_resumes_right_after_that_event() {
    let app = TestApp::spawn().await;
    let first = id_of(&app.create_ok("tenant-a", &snapshot('a', 1)).await);
    let second = id_of(&app.create_ok("tenant-a", &snapshot('a', 2)).await);

    let mut resumed = EventStream::open_ok(&app, "tenant-a", "/events", Some("4")).await;
    let mut from_query =
        EventStream::open_ok(&app, "tenant-a", "/events?last_event_id=0", None).await;
    let mut header_wins =
        EventStream::open_ok(&app, "tenant-a", "/events?last_event_id=0", Some("5")).await;

    assert_eq!(
        resumed.take(2).await,
        triples(&[
            ("5", "job.submitted", &second),
            ("6", "job.running", &second)
        ])
    );
    assert_eq!(
        from_query.take(3).await,
        triples(&[
            ("1", "job.created", &first),
            ("2", "job.submitted", &first),
            ("3", "job.running", &first)
        ])
    );
    assert_eq!(
        header_wins.take(1).await,
        triples(&[("6", "job.running", &second)])
    );
    // Nothing more has happened: the resumed stream waits.
    assert!(
        resumed
            .next_block(Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_stream_can_follow_one_job_or_one_snapshot() {
    let app = TestApp::spawn().await;
    let first = id_of(&app.create_ok("tenant-a", &snapshot('a', 1)).await);
    let second = id_of(&app.create_ok("tenant-a", &snapshot('a', 2)).await);

    let mut of_job = EventStream::open_ok(
        &app,
        "tenant-a",
        &format!("/events?job_id={second}"),
        Some("0"),
    )
    .await;
    let mut of_snapshot = EventStream::open_ok(
        &app,
        "tenant-a",
        &format!("/events?snapshot_id={}", snapshot('a', 1)),
        Some("0"),
    )
    .await;

    assert_eq!(
        of_job.take(3).await,
        triples(&[
            ("4", "job.created", &second),
            ("5", "job.submitted", &second),
            ("6", "job.running", &second)
        ])
    );
    assert_eq!(
        of_snapshot.take(3).await,
        triples(&[
            ("1", "job.created", &first),
            ("2", "job.submitted", &first),
            ("3", "job.running", &first)
        ])
    );
    assert!(
        of_job
            .next_block(Duration::from_millis(300))
            .await
            .is_none()
    );
    // Past the other job's events, the snapshot's stream says where it
    // stands: a reconnect resumes from there, not from event 3.
    assert_eq!(
        of_snapshot.next_block(EVENT_WAIT).await.as_deref(),
        Some("id: 6")
    );
}

#[tokio::test]
async fn a_stream_opens_with_its_starting_point_so_a_reconnect_resumes_there() {
    let app = TestApp::spawn().await;
    app.create_ok("tenant-a", &snapshot('a', 1)).await;

    let mut from_now = EventStream::open_raw(&app, "tenant-a", "/events", None).await;
    let mut resumed = EventStream::open_raw(&app, "tenant-a", "/events", Some("1")).await;
    let mut other = EventStream::open_raw(&app, "tenant-b", "/events", None).await;

    assert_eq!(
        from_now.next_block(EVENT_WAIT).await.as_deref(),
        Some("id: 3")
    );
    assert_eq!(
        resumed.next_block(EVENT_WAIT).await.as_deref(),
        Some("id: 1")
    );
    assert_eq!(other.next_block(EVENT_WAIT).await.as_deref(), Some("id: 0"));
}

#[tokio::test]
async fn a_post_that_got_no_answer_is_a_scheduled_retry() {
    // Arrange: Cinder answers the create after the gateway stopped waiting.
    let app = TestApp::spawn_with(&["--upstream-timeout", "1s"]).await;
    app.get("tenant-a", "/snapshots").await;
    let mut stream = EventStream::open_ok(&app, "tenant-a", "/events", None).await;
    app.sim.inject(openstack_sim::Fault {
        op: openstack_sim::Op::BackupCreate,
        kind: openstack_sim::FaultKind::Delay(Duration::from_millis(1500)),
        times: 1,
    });

    // Act
    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), serde_json::json!({}))
        .await;

    // Assert: the job's answer and its events tell the same story.
    assert_eq!(answer.body["state"], "queued", "{}", answer.text);
    let id = id_of(&answer.body);
    assert_eq!(
        stream.take(2).await,
        triples(&[("1", "job.created", &id), ("2", "job.submitted", &id)])
    );
    let retry = stream.next().await.expect("the retry");
    assert_eq!(
        (retry.id.as_str(), retry.event.as_str()),
        ("3", "job.retry_scheduled")
    );
    assert_eq!(retry.data["data"]["state"], "queued");
    assert_eq!(
        retry.data["data"]["error"]["detail"],
        "Cinder did not answer within 1s"
    );
    assert_eq!(
        retry.data["data"]["next_attempt_at"],
        answer.body["next_attempt_at"]
    );
}

#[tokio::test]
async fn resuming_past_purged_events_is_410_and_past_the_latest_event_is_400() {
    // Arrange: of a job's three events, the first two are past retention.
    let app = TestApp::spawn().await;
    app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let week_ms = 8 * 24 * 3600 * 1000_i64;
    app.store_sql(&format!(
        "UPDATE job_events SET occurred_at = occurred_at - {week_ms} WHERE seq <= 2"
    ))
    .await;
    assert_eq!(app.purge().await.events, 2);

    // Act
    let gone: Vec<_> = [Some("0"), Some("1")]
        .into_iter()
        .map(|id| EventStream::open(&app, "tenant-a", "/events", id))
        .collect();
    let mut after_the_gap = EventStream::open_ok(&app, "tenant-a", "/events", Some("2")).await;
    let past = EventStream::open(&app, "tenant-a", "/events", Some("4")).await;
    let fresh = EventStream::open(&app, "tenant-a", "/events", None).await;

    // Assert
    for answer in gone {
        match answer.await {
            Err(answer) => {
                answer.assert_problem(410, "events-expired");
                assert!(answer.text.contains("GET /jobs"), "{}", answer.text);
            }
            Ok(_) => panic!("resumed across purged events"),
        }
    }
    let kept = after_the_gap.next().await.expect("the kept event");
    assert_eq!(
        (kept.id.as_str(), kept.event.as_str()),
        ("3", "job.running")
    );
    match past {
        Err(answer) => answer.assert_problem(400, "invalid-request"),
        Ok(_) => panic!("resumed past the latest event"),
    }
    assert!(fresh.is_ok(), "a stream from now is always open");
}

#[tokio::test]
async fn a_stream_resumed_after_a_restart_loses_no_event() {
    let mut app = TestApp::spawn().await;
    let mut before = EventStream::open_ok(&app, "tenant-a", "/events", None).await;
    let id = id_of(&app.create_ok("tenant-a", &snapshot('a', 1)).await);
    let seen = before.take(2).await;

    app.restart().await;
    // The backup ends while the client is away.
    app.finish_backups();
    app.cycle().await;
    let last_seen = seen.last().expect("seen").0.clone();
    let mut after = EventStream::open_ok(&app, "tenant-a", "/events", Some(&last_seen)).await;

    // What was sent before the restart may still be read; then the stream ends.
    let mut ended = false;
    for _ in 0..10 {
        if before.next_block(EVENT_WAIT).await.is_none() {
            ended = true;
            break;
        }
    }
    assert!(ended, "the stream ended with its gateway");
    assert_eq!(
        after.take(2).await,
        triples(&[("3", "job.running", &id), ("4", "job.succeeded", &id)])
    );
}

#[tokio::test]
async fn an_idle_stream_carries_heartbeats() {
    let app = TestApp::spawn_with(&["--event-heartbeat", "200ms"]).await;
    let mut stream = EventStream::open_raw(&app, "tenant-a", "/events", None).await;

    let start = stream.next_block(EVENT_WAIT).await;
    let block = stream.next_block(EVENT_WAIT).await.expect("a heartbeat");

    assert_eq!(start.as_deref(), Some("id: 0"), "where the stream starts");

    assert!(block.starts_with(':'), "a comment: {block:?}");
}

#[tokio::test]
async fn a_tenant_has_at_most_its_cap_of_open_streams() {
    let app = TestApp::spawn_with(&["--max-event-streams", "1"]).await;
    let open = EventStream::open_ok(&app, "tenant-a", "/events", None).await;

    let refused = match EventStream::open(&app, "tenant-a", "/events", None).await {
        Err(answer) => answer,
        Ok(_) => panic!("a second stream of tenant-a was opened"),
    };
    let other_tenant = EventStream::open(&app, "tenant-b", "/events", None).await;
    drop(open);
    // The slot comes back once the server sees the connection go.
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(stream) = EventStream::open(&app, "tenant-a", "/events", None).await {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    refused.assert_problem(429, "too-many-event-streams");
    assert!(refused.header("retry-after").is_some());
    assert!(other_tenant.is_ok(), "each tenant has its own cap");
    assert!(reopened.is_some(), "a closed stream frees its slot");
}

#[tokio::test]
async fn a_malformed_stream_request_is_a_400_problem() {
    let app = TestApp::spawn().await;

    for (path, last_event_id) in [
        ("/events", Some("abc")),
        ("/events", Some("-1")),
        ("/events?job_id=not-a-job", None),
        ("/events?snapshot_id=..", None),
        ("/events?last_event_id=x", None),
        ("/events?since=1", None),
    ] {
        match EventStream::open(&app, "tenant-a", path, last_event_id).await {
            Err(answer) => answer.assert_problem(400, "invalid-request"),
            Ok(_) => panic!("{path} {last_event_id:?} was answered a stream"),
        }
    }
    let anonymous = app
        .request(Method::GET, "/events", None)
        .send()
        .await
        .expect("answered");
    Answer::read(anonymous)
        .await
        .assert_problem(401, "unauthenticated");
}

#[tokio::test]
async fn a_stopping_gateway_ends_its_streams() {
    let app = TestApp::spawn().await;
    let mut stream = EventStream::open_ok(&app, "tenant-a", "/events", None).await;

    app.begin_shutdown();

    assert_eq!(
        stream.next_block(EVENT_WAIT).await,
        None,
        "the stream ended"
    );
}

#[tokio::test]
async fn metrics_count_the_open_streams() {
    let app = TestApp::spawn().await;
    let _a = EventStream::open_ok(&app, "tenant-a", "/events", None).await;
    let _b = EventStream::open_ok(&app, "tenant-b", "/events", None).await;

    let scrape = app.get("tenant-a", "/metrics").await;

    assert!(
        scrape
            .text
            .lines()
            .any(|line| line == "backup_gateway_event_streams 2"),
        "{}",
        scrape.text
    );
}
