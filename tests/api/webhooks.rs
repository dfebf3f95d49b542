//! Webhooks, delivered over real HTTP to receivers of the tests' own that
//! verify the Standard Webhooks signatures independently of the gateway's
//! code: subscriptions and their limits, a create's `callback_url`, the
//! allow-list at create time, retries through failures and a receiver
//! killed and restarted, secret rotation, tenant isolation, and 1,000 jobs
//! over 10 tenants each with its own subscriber.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aws_lc_rs::hmac;
use axum::{
    body::Bytes,
    http::{HeaderMap, StatusCode as AxumStatus, Uri},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    databases::TestDatabase,
    helpers::{Answer, Gateway, TestApp, TestCloud, snapshot},
};

/// Longest wait for deliveries in these tests (they come within a second
/// or so; this only bounds a failing test).
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// The flags of a gateway delivering to loopback receivers, retrying fast.
const WEBHOOK_FLAGS: [&str; 6] = [
    "--webhook-allow",
    "127.0.0.0/8",
    "--webhook-retry-base",
    "100ms",
    "--webhook-retry-max",
    "300ms",
];

/// The events of a job that runs to `succeeded`, in order.
const A_JOBS_LIFE: [&str; 4] = [
    "job.created",
    "job.submitted",
    "job.running",
    "job.succeeded",
];

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// The path it was sent to.
    pub path: String,
    /// How many signatures `webhook-signature` held.
    pub signatures: usize,
    /// The receiver's secrets (by their index) one of the signatures
    /// verified with.
    pub verified_with: Vec<usize>,
    /// The body.
    pub body: Value,
    /// What the receiver answered.
    pub answered: u16,
}

#[derive(Default)]
struct ReceiverState {
    secrets: Mutex<Vec<String>>,
    fail_next: AtomicUsize,
    /// Answer every request with a redirect here.
    redirect_to: Mutex<Option<String>>,
    /// Hold the answer of this many next requests for a minute.
    hang_next: AtomicUsize,
    received: Mutex<Vec<Received>>,
}

/// A webhook receiver on a loopback port, in a runtime of its own, so that
/// killing it ends its connections too (as a killed process would).
pub struct Receiver {
    pub address: SocketAddr,
    state: Arc<ReceiverState>,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
}

/// Checks a Standard Webhooks signature header against `secrets`: the
/// indices of those one of its `v1,` signatures verifies with.
fn verify(secrets: &[String], id: &str, timestamp: &str, body: &[u8], header: &str) -> Vec<usize> {
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
    secrets
        .iter()
        .enumerate()
        .filter(|(_, secret)| {
            let Some(key) = secret
                .strip_prefix("whsec_")
                .and_then(|k| STANDARD.decode(k).ok())
            else {
                return false;
            };
            let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
            header.split(' ').any(|signature| {
                signature
                    .strip_prefix("v1,")
                    .and_then(|s| STANDARD.decode(s).ok())
                    .is_some_and(|tag| hmac::verify(&key, &signed, &tag).is_ok())
            })
        })
        .map(|(n, _)| n)
        .collect()
}

impl Receiver {
    /// A receiver on a free port.
    pub async fn start() -> Receiver {
        Self::start_on("127.0.0.1:0".parse().expect("address"), Arc::default()).await
    }

    async fn start_on(address: SocketAddr, state: Arc<ReceiverState>) -> Receiver {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(address))
                .expect("receiver binds");
            let _ = ready_tx.send(listener.local_addr().expect("address"));
            let app =
                axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
                    let state = shared.clone();
                    async move {
                        let hang = state
                            .hang_next
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        let answer = receive(&state, &uri, &headers, &body);
                        if hang {
                            // Recorded as never answered.
                            if let Some(last) = state.received.lock().unwrap().last_mut() {
                                last.answered = 0;
                            }
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                        answer
                    }
                });
            // Until told to stop; then the runtime and every connection
            // task in it are dropped.
            runtime.block_on(async move {
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stop_rx => {}
                }
            });
            runtime.shutdown_background();
        });
        let address = ready_rx.await.expect("receiver started");
        Receiver {
            address,
            state,
            stop: Some((stop_tx, thread)),
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Verifies signatures with `secret` too.
    pub fn trust(&self, secret: &str) {
        self.state.secrets.lock().unwrap().push(secret.to_owned());
    }

    /// Answers the next `n` requests 503.
    pub fn fail_next(&self, n: usize) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Holds the answers of the next `n` requests for a minute.
    pub fn hang_next(&self, n: usize) {
        self.state.hang_next.store(n, Ordering::SeqCst);
    }

    /// Answers every request `307` to `url`.
    pub fn redirect_to(&self, url: &str) {
        *self.state.redirect_to.lock().unwrap() = Some(url.to_owned());
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The requests answered 2xx, one per `webhook-id`.
    pub fn delivered(&self) -> Vec<Received> {
        let mut seen = BTreeSet::new();
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered) && seen.insert(r.id.clone()))
            .collect()
    }

    /// Waits until `done` holds of what was delivered.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
        loop {
            let delivered = self.delivered();
            if done(&delivered) {
                return delivered;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; delivered: {:#?}",
                delivered
                    .iter()
                    .map(|r| (&r.path, &r.body["type"]))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until an event of `event_type` of the job was delivered.
    pub async fn wait_for_event(&self, job_id: &str, event_type: &str) -> Vec<Received> {
        self.wait_for(&format!("{event_type} of job {job_id}"), |d| {
            has(d, job_id, event_type)
        })
        .await
    }

    /// Kills the receiver: its port closes and its connections are cut.
    pub fn kill(&mut self) {
        if let Some((stop, thread)) = self.stop.take() {
            let _ = stop.send(());
            thread.join().expect("receiver thread ends");
        }
    }

    /// Starts it again on the same port, with what it had received.
    pub async fn restart(&mut self) {
        self.kill();
        *self = Self::start_on(self.address, self.state.clone()).await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some((stop, _)) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Records one request and answers it: 503 while told to fail, 401 when no
/// signature verifies or the timestamp is not within five minutes, else 204.
fn receive(
    state: &ReceiverState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
    let verified_with = verify(
        &state.secrets.lock().unwrap(),
        &id,
        &timestamp,
        body,
        &signature,
    );
    let failing = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let redirect = state.redirect_to.lock().unwrap().clone();
    let answer = if redirect.is_some() {
        AxumStatus::TEMPORARY_REDIRECT
    } else if failing {
        AxumStatus::SERVICE_UNAVAILABLE
    } else if verified_with.is_empty() || !fresh {
        AxumStatus::UNAUTHORIZED
    } else {
        AxumStatus::NO_CONTENT
    };
    state.received.lock().unwrap().push(Received {
        id,
        path: uri.path().to_owned(),
        signatures: signature.split(' ').filter(|s| !s.is_empty()).count(),
        verified_with,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        answered: answer.as_u16(),
    });
    match redirect {
        Some(location) => (answer, [(axum::http::header::LOCATION, location)]).into_response(),
        None => answer.into_response(),
    }
}

/// `method path` as `tenant` with a JSON body.
async fn call(
    gateway: &Gateway,
    method: Method,
    path: &str,
    tenant: &str,
    body: Option<Value>,
) -> Answer {
    let mut request = gateway.request(method, path, Some(tenant));
    if let Some(body) = body {
        request = request.json(&body);
    }
    Answer::read(request.send().await.expect("answered")).await
}

/// Subscribes `tenant` to `url`; the webhook, with its secret.
pub async fn subscribe(gateway: &Gateway, tenant: &str, body: Value) -> Value {
    let answer = call(gateway, Method::POST, "/webhooks", tenant, Some(body)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let id = answer.body["id"].as_str().expect("id");
    assert_eq!(
        answer.header("location"),
        Some(format!("/webhooks/{id}").as_str())
    );
    assert!(
        answer.body["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{}",
        answer.text
    );
    answer.body
}

/// The types of the events delivered for `job_id`, in the order received.
pub fn types_of(delivered: &[Received], job_id: &str) -> Vec<String> {
    delivered
        .iter()
        .filter(|r| r.body["data"]["job_id"] == job_id)
        .map(|r| r.body["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn sorted(mut types: Vec<String>) -> Vec<String> {
    types.sort();
    types
}

pub fn has(delivered: &[Received], job_id: &str, event_type: &str) -> bool {
    types_of(delivered, job_id).iter().any(|t| t == event_type)
}

/// The deliveries of a webhook, as its tenant reads them.
async fn deliveries(gateway: &Gateway, tenant: &str, webhook_id: &str) -> Vec<Value> {
    let answer = gateway
        .get(
            tenant,
            &format!("/webhooks/{webhook_id}/deliveries?limit=100"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.body["deliveries"]
        .as_array()
        .expect("deliveries")
        .clone()
}

#[tokio::test]
async fn a_subscriber_gets_every_event_signed_through_failures_and_a_restart() {
    // Arrange: a receiver that fails its first two requests, subscribed.
    let app = TestApp::spawn_live(Duration::from_millis(300), &WEBHOOK_FLAGS).await;
    let mut receiver = Receiver::start().await;
    receiver.fail_next(2);
    let webhook = subscribe(&app, "tenant-a", json!({"url": receiver.url("/hooks")})).await;
    receiver.trust(webhook["secret"].as_str().unwrap());
    let webhook_id = webhook["id"].as_str().unwrap();

    // Act: a backup runs to its end.
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let job_id = job["id"].as_str().unwrap();
    let delivered = receiver
        .wait_for("the first job's every event", |d| {
            A_JOBS_LIFE.iter().all(|t| has(d, job_id, t))
        })
        .await;

    // Assert: every change, each verified; the failures retried (a retry
    // does not hold up the events after it, so they may overtake it).
    assert_eq!(
        sorted(types_of(&delivered, job_id)),
        sorted(A_JOBS_LIFE.map(str::to_owned).to_vec())
    );
    let received = receiver.received();
    assert!(
        received
            .iter()
            .all(|r| r.verified_with == [0] && r.signatures == 1)
    );
    assert!(received.iter().all(|r| r.path == "/hooks"));
    assert_eq!(received.iter().filter(|r| r.answered == 503).count(), 2);
    let retried = &received[0].id;
    assert!(
        received.iter().filter(|r| &r.id == retried).count() >= 2,
        "the first delivery was attempted again with the same webhook-id"
    );
    let succeeded = delivered
        .iter()
        .find(|r| r.body["type"] == "job.succeeded")
        .unwrap();
    assert_eq!(succeeded.body["data"]["state"], "succeeded");
    assert!(succeeded.body["data"]["backup_id"].is_string());
    assert!(succeeded.body["timestamp"].is_string());

    // Act: the receiver is killed while the next job runs, then restarted.
    receiver.kill();
    let second = app.create_ok("tenant-a", &snapshot('a', 2)).await;
    let second_id = second["id"].as_str().unwrap();
    let failing = wait_until(|| async {
        deliveries(&app, "tenant-a", webhook_id)
            .await
            .into_iter()
            .any(|d| {
                d["job_id"] == second_id
                    && d["status"] == "pending"
                    && d["attempts"].as_u64() >= Some(2)
            })
    })
    .await;
    assert!(failing, "deliveries failing while the receiver is down");
    let pending = deliveries(&app, "tenant-a", webhook_id).await;
    let down = pending
        .iter()
        .find(|d| d["job_id"] == second_id && d["status"] == "pending" && d["attempts"] != 0)
        .unwrap();
    assert_eq!(
        down["last_error"], "could not connect to the receiver",
        "{down}"
    );
    assert!(down["next_attempt_at"].is_string(), "{down}");
    receiver.restart().await;

    // Assert: nothing lost (in the order their retries came due).
    let delivered = receiver
        .wait_for("the second job's every event", |d| {
            A_JOBS_LIFE.iter().all(|t| has(d, second_id, t))
        })
        .await;
    assert_eq!(
        sorted(types_of(&delivered, second_id)),
        sorted(A_JOBS_LIFE.map(str::to_owned).to_vec())
    );
    let all = wait_until(|| async {
        deliveries(&app, "tenant-a", webhook_id)
            .await
            .iter()
            .all(|d| d["status"] == "succeeded")
    })
    .await;
    assert!(all, "every delivery succeeded in the end");
    let listed = deliveries(&app, "tenant-a", webhook_id).await;
    assert_eq!(listed.len(), 8, "one delivery per event");
    assert!(
        listed
            .iter()
            .all(|d| d["webhook_id"] == webhook_id && d["last_status_code"] == 204)
    );
    assert!(listed.iter().any(|d| d["attempts"].as_u64() > Some(1)));
    assert!(
        listed
            .iter()
            .all(|d| d["payload"]["data"]["job_id"] == d["job_id"]),
        "each delivery shows what it sends"
    );
    let ids: Vec<&str> = listed.iter().map(|d| d["id"].as_str().unwrap()).collect();
    let mut newest_first = ids.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first, "newest first");
}

/// Polls `check` until it holds (true) or [`DELIVERY_WAIT`] passes (false).
async fn wait_until<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_callback_outside_the_allow_list_is_refused_at_create_and_changes_nothing() {
    let app = TestApp::spawn_with(&WEBHOOK_FLAGS).await;

    for url in [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "https://hooks.example.invalid/x",
        "http://[::1]:8080/",
    ] {
        let answer = app
            .create_backup("tenant-a", &snapshot('a', 1), json!({"callback_url": url}))
            .await;
        if url.contains("invalid") {
            // Not listed, and resolves to nothing allowed (or nothing).
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
        } else {
            answer.assert_problem(400, "webhook-target-not-allowed");
        }
        let answer = call(
            &app,
            Method::POST,
            "/webhooks",
            "tenant-a",
            Some(json!({"url": url})),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{url}: {}",
            answer.text
        );
    }
    for url in ["ftp://127.0.0.1/", "http://user:pw@127.0.0.1/", "not a url"] {
        let answer = app
            .create_backup("tenant-a", &snapshot('a', 1), json!({"callback_url": url}))
            .await;
        answer.assert_problem(400, "invalid-request");
    }

    // Nothing was recorded: no job, no webhook, no backup.
    assert!(app.sim.backups(crate::helpers::PROJECT_A).is_empty());
    let jobs = app.get("tenant-a", "/jobs").await;
    assert_eq!(jobs.body["jobs"], json!([]), "{}", jobs.text);
    let webhooks = app.get("tenant-a", "/webhooks").await;
    assert_eq!(webhooks.body["webhooks"], json!([]), "{}", webhooks.text);

    // A name refused for what it resolves to is answered without the
    // addresses it resolves to (the gateway's network is not shown).
    let elsewhere = TestApp::spawn_with(&["--webhook-allow", "10.0.0.0/8"]).await;
    let answer = elsewhere
        .create_backup(
            "tenant-a",
            &snapshot('a', 1),
            json!({"callback_url": "http://localhost:9/"}),
        )
        .await;
    answer.assert_problem(400, "webhook-target-not-allowed");
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("`localhost`")
            && !answer.text.contains("127.0.0.1")
            && !answer.text.contains("::1"),
        "{}",
        answer.text
    );

    // A gateway whose operator allows nothing refuses every callback.
    let closed = TestApp::spawn().await;
    let answer = closed
        .create_backup(
            "tenant-a",
            &snapshot('a', 1),
            json!({"callback_url": "http://127.0.0.1:9/"}),
        )
        .await;
    answer.assert_problem(400, "webhook-target-not-allowed");
    assert!(
        answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("--webhook-allow")
    );
}

#[tokio::test]
async fn a_creates_callback_gets_that_jobs_events_only_signed_with_the_answered_secret() {
    let app = TestApp::spawn_live(Duration::from_millis(200), &WEBHOOK_FLAGS).await;
    let receiver = Receiver::start().await;

    // Act: two backups, one naming a callback.
    let created = app
        .create_backup(
            "tenant-a",
            &snapshot('a', 1),
            json!({"callback_url": receiver.url("/job-done?portal=7")}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let job_id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["callback_secret"]
        .as_str()
        .expect("the callback's secret");
    receiver.trust(secret);
    let other = app.create_ok("tenant-a", &snapshot('a', 2)).await;

    // Assert: the job's events, and nothing of the other job.
    let delivered = receiver.wait_for_event(&job_id, "job.succeeded").await;
    assert_eq!(types_of(&delivered, &job_id), A_JOBS_LIFE);
    assert!(
        delivered
            .iter()
            .all(|r| r.path == "/job-done" && r.verified_with == [0])
    );
    let other_id = other["id"].as_str().unwrap();
    let other_done =
        wait_until(|| async { app.job("tenant-a", other_id).await["done"] == true }).await;
    assert!(other_done, "the other job ended");
    assert!(types_of(&receiver.delivered(), other_id).is_empty());

    // The job names its callback, whose deliveries are readable; the
    // secret is not shown again.
    let job = app.job("tenant-a", &job_id).await;
    assert_eq!(
        job["request"]["callback_url"],
        receiver.url("/job-done?portal=7")
    );
    assert_eq!(job["links"]["callback"], format!("/webhooks/{job_id}"));
    assert!(job.get("callback_secret").is_none(), "{job}");
    let webhook = app.get("tenant-a", &format!("/webhooks/{job_id}")).await;
    assert_eq!(webhook.status, StatusCode::OK, "{}", webhook.text);
    assert_eq!(webhook.body["job_id"], job_id.as_str());
    assert!(webhook.body.get("secret").is_none(), "{}", webhook.text);
    let listed = deliveries(&app, "tenant-a", &job_id).await;
    assert_eq!(listed.len(), 4);

    // Another tenant sees neither.
    let foreign = app.get("tenant-b", &format!("/webhooks/{job_id}")).await;
    foreign.assert_problem(404, "webhook-not-found");
    let foreign = app
        .get("tenant-b", &format!("/webhooks/{job_id}/deliveries"))
        .await;
    foreign.assert_problem(404, "webhook-not-found");
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_until_its_overlap_ends() {
    let app = TestApp::spawn_live(Duration::from_millis(100), &WEBHOOK_FLAGS).await;
    let receiver = Receiver::start().await;
    let webhook = subscribe(
        &app,
        "tenant-a",
        json!({"url": receiver.url("/"), "event_types": ["job.succeeded"]}),
    )
    .await;
    let old = webhook["secret"].as_str().unwrap().to_owned();
    receiver.trust(&old);
    let id = webhook["id"].as_str().unwrap();

    // Act: rotate to a secret of the caller's own.
    let new = format!("whsec_{}", STANDARD.encode([7u8; 32]));
    let rotated = call(
        &app,
        Method::POST,
        &format!("/webhooks/{id}/rotate-secret"),
        "tenant-a",
        Some(json!({"secret": new})),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    assert_eq!(rotated.body["secret"], new.as_str());
    assert!(rotated.body["previous_secret_expires_at"].is_string());
    receiver.trust(&new);
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let job_id = job["id"].as_str().unwrap();

    // Assert: only the type asked for, signed with both secrets.
    let delivered = receiver.wait_for_event(job_id, "job.succeeded").await;
    assert_eq!(types_of(&delivered, job_id), ["job.succeeded"]);
    assert_eq!(delivered[0].signatures, 2);
    assert_eq!(delivered[0].verified_with, [0, 1], "each secret verifies");

    // A rotation retried with the same secret changes nothing (the old
    // one still signs); a rotation with no body makes a new one.
    let same = call(
        &app,
        Method::POST,
        &format!("/webhooks/{id}/rotate-secret"),
        "tenant-a",
        Some(json!({"secret": new})),
    )
    .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!(same.body["secret"], new.as_str());
    assert_eq!(
        same.body["previous_secret_expires_at"],
        rotated.body["previous_secret_expires_at"]
    );
    let fresh = call(
        &app,
        Method::POST,
        &format!("/webhooks/{id}/rotate-secret"),
        "tenant-a",
        None,
    )
    .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    let fresh_secret = fresh.body["secret"].as_str().unwrap();
    assert!(fresh_secret.starts_with("whsec_") && fresh_secret != new);
}

#[tokio::test]
async fn subscriptions_are_the_tenants_own_limited_and_deleted_with_their_deliveries() {
    let mut flags = WEBHOOK_FLAGS.to_vec();
    flags.extend(["--max-webhooks", "2"]);
    let app = TestApp::spawn_with(&flags).await;
    let receiver = Receiver::start().await;

    let first = subscribe(
        &app,
        "tenant-a",
        json!({"url": receiver.url("/1"), "description": "portal"}),
    )
    .await;
    let _second = subscribe(&app, "tenant-a", json!({"url": receiver.url("/2")})).await;
    let third = call(
        &app,
        Method::POST,
        "/webhooks",
        "tenant-a",
        Some(json!({"url": receiver.url("/3")})),
    )
    .await;
    third.assert_problem(409, "too-many-webhooks");
    let _other_tenant = subscribe(&app, "tenant-b", json!({"url": receiver.url("/b")})).await;

    // Listing: the tenant's own, oldest first, a page at a time.
    let page = app.get("tenant-a", "/webhooks?limit=1").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["webhooks"][0]["id"], first["id"]);
    assert_eq!(page.body["webhooks"][0]["description"], "portal");
    assert!(page.body["webhooks"][0].get("secret").is_none());
    let token = page.body["next_page_token"].as_str().expect("a next page");
    let rest = app
        .get("tenant-a", &format!("/webhooks?limit=1&page_token={token}"))
        .await;
    assert_eq!(rest.body["webhooks"].as_array().unwrap().len(), 1);
    assert!(
        rest.body.get("next_page_token") == Some(&Value::Null),
        "the last page: {}",
        rest.text
    );

    // Bad requests change nothing.
    for body in [
        json!({}),
        json!({"url": receiver.url("/x"), "event_types": []}),
        json!({"url": receiver.url("/x"), "event_types": ["job.started"]}),
        json!({"url": receiver.url("/x"), "secret": "hunter2"}),
        json!({"url": receiver.url("/x"), "colour": "blue"}),
        json!({"url": receiver.url("/x"), "description": "d".repeat(256)}),
    ] {
        let answer = call(
            &app,
            Method::POST,
            "/webhooks",
            "tenant-b",
            Some(body.clone()),
        )
        .await;
        answer.assert_problem(400, "invalid-request");
    }
    let b = app.get("tenant-b", "/webhooks").await;
    assert_eq!(
        b.body["webhooks"].as_array().unwrap().len(),
        1,
        "{}",
        b.text
    );

    // Another tenant can neither read nor delete it; its owner can.
    let id = first["id"].as_str().unwrap();
    call(
        &app,
        Method::DELETE,
        &format!("/webhooks/{id}"),
        "tenant-b",
        None,
    )
    .await
    .assert_problem(404, "webhook-not-found");
    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/webhooks/{id}"),
        "tenant-a",
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    app.get("tenant-a", &format!("/webhooks/{id}"))
        .await
        .assert_problem(404, "webhook-not-found");
    call(
        &app,
        Method::DELETE,
        &format!("/webhooks/{id}"),
        "tenant-a",
        None,
    )
    .await
    .assert_problem(404, "webhook-not-found");
    app.get("tenant-a", "/webhooks/not-a-uuid")
        .await
        .assert_problem(404, "webhook-not-found");
    // A place is free again.
    subscribe(&app, "tenant-a", json!({"url": receiver.url("/3")})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_over_ten_tenants_reach_each_tenants_own_subscriber_whole() {
    // Arrange: ten tenants, each subscribed at a path of its own.
    let settings = crate::chaos::Settings {
        submissions: 1000,
        kills: 0,
        tenants: 10,
        concurrency: 16,
        drain: Duration::from_secs(120),
        seed: 1,
    };
    let seed = crate::chaos::chaos_seed(&settings);
    let sim = openstack_sim::Sim::new(
        openstack_sim::SimConfig {
            backup_duration: Duration::from_millis(100),
            ..openstack_sim::SimConfig::default()
        },
        seed.clone(),
    );
    let cloud = sim.start().await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let mut flags = crate::chaos::gateway_flags(dir.path(), &cloud, &seed, &store);
    flags.extend(WEBHOOK_FLAGS.iter().map(|f| (*f).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let gateway = Gateway::start(&flags).await;
    let receiver = Receiver::start().await;
    let tokens: Vec<String> = seed
        .tenants
        .iter()
        .map(|t| crate::chaos::token(&t.name))
        .collect();
    let client = reqwest::Client::new();
    for (t, token) in tokens.iter().enumerate() {
        let answer = client
            .post(format!("{}/webhooks", gateway.address()))
            .bearer_auth(token)
            .json(&json!({"url": receiver.url(&format!("/tenant/{t}"))}))
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), StatusCode::CREATED);
        let body: Value = answer.json().await.expect("json");
        receiver.trust(body["secret"].as_str().unwrap());
    }

    // Act: 1,000 backups, 16 at a time.
    let plan: Vec<(usize, String)> = seed
        .tenants
        .iter()
        .enumerate()
        .flat_map(|(t, tenant)| tenant.snapshots.iter().map(move |s| (t, s.id.clone())))
        .take(1000)
        .collect();
    assert_eq!(plan.len(), 1000);
    let jobs: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, plan, tokens, jobs, next) = (
                client.clone(),
                plan.clone(),
                tokens.clone(),
                jobs.clone(),
                next.clone(),
            );
            let address = gateway.address().to_owned();
            tokio::spawn(async move {
                while let Some((t, snapshot_id)) = plan.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let answer = client
                        .post(format!("{address}/snapshots/{snapshot_id}/backups"))
                        .bearer_auth(&tokens[*t])
                        .send()
                        .await
                        .expect("answered");
                    assert_eq!(answer.status(), StatusCode::ACCEPTED);
                    let job: Value = answer.json().await.expect("json");
                    jobs.lock()
                        .unwrap()
                        .insert(job["id"].as_str().unwrap().to_owned(), *t);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("creates");
    }
    let jobs = jobs.lock().unwrap().clone();
    assert_eq!(jobs.len(), 1000);

    // Assert: every event of every tenant reached that tenant's receiver,
    // once per event, and nothing else did.
    let store = gateway.store();
    let mut expected: BTreeMap<usize, usize> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let delivered = receiver.delivered();
        let succeeded = delivered
            .iter()
            .filter(|r| r.body["type"] == "job.succeeded")
            .count();
        if succeeded == 1000 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{succeeded} of 1000 successes delivered"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Settle: the events up to now are all turned into deliveries.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered = receiver.delivered();
    for (t, tenant) in seed.tenants.iter().enumerate() {
        let events = store
            .events_after(&tenant.project_id, 0, &Default::default(), 100_000)
            .await
            .expect("events");
        expected.insert(t, events.len());
        let mine: Vec<&Received> = delivered
            .iter()
            .filter(|r| r.path == format!("/tenant/{t}"))
            .collect();
        let got: BTreeMap<(String, String), usize> =
            mine.iter().fold(BTreeMap::new(), |mut m, r| {
                let key = (
                    r.body["data"]["job_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    r.body["type"].as_str().unwrap_or_default().to_owned(),
                );
                *m.entry(key).or_default() += 1;
                m
            });
        let want: BTreeMap<(String, String), usize> =
            events.iter().fold(BTreeMap::new(), |mut m, e| {
                *m.entry((e.job_id.to_string(), e.kind.event_type().to_owned()))
                    .or_default() += 1;
                m
            });
        assert_eq!(got, want, "tenant {t}: every event, once");
        assert!(
            mine.iter()
                .all(|r| jobs.get(r.body["data"]["job_id"].as_str().unwrap()) == Some(&t)),
            "tenant {t} received only its own jobs' events"
        );
    }
    let total: usize = expected.values().sum();
    assert_eq!(
        delivered.len(),
        total,
        "no delivery to a receiver of no tenant"
    );
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| !r.verified_with.is_empty())
    );
}

#[tokio::test]
async fn a_delivery_never_taken_fails_once_retries_are_over_and_no_redirect_is_followed() {
    let mut flags = WEBHOOK_FLAGS.to_vec();
    flags.extend(["--webhook-retry-for", "1s"]);
    let app = TestApp::spawn_live(Duration::from_millis(100), &flags).await;
    let elsewhere = Receiver::start().await;
    let receiver = Receiver::start().await;
    receiver.redirect_to(&elsewhere.url("/stolen"));
    let webhook = subscribe(
        &app,
        "tenant-a",
        json!({"url": receiver.url("/"), "event_types": ["job.created"]}),
    )
    .await;
    receiver.trust(webhook["secret"].as_str().unwrap());
    let id = webhook["id"].as_str().unwrap();

    app.create_ok("tenant-a", &snapshot('a', 1)).await;

    let failed = wait_until(|| async {
        deliveries(&app, "tenant-a", id)
            .await
            .first()
            .is_some_and(|d| d["status"] == "failed")
    })
    .await;
    assert!(failed, "the delivery ends failed");
    let delivery = &deliveries(&app, "tenant-a", id).await[0];
    assert!(delivery["attempts"].as_u64() > Some(1), "{delivery}");
    assert_eq!(delivery["last_status_code"], 307, "{delivery}");
    assert!(
        delivery["last_error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{delivery}"
    );
    assert!(delivery["next_attempt_at"].is_null(), "{delivery}");
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was not followed"
    );
    let attempts = receiver.received().len() as u64;
    assert_eq!(Some(attempts), delivery["attempts"].as_u64());

    let metrics = app.get("tenant-a", "/metrics").await.text;
    assert!(
        metrics.contains("backup_gateway_webhook_attempts_total{outcome=\"gave_up\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("backup_gateway_webhook_attempts_total{outcome=\"failed\"}"));
}

#[tokio::test]
async fn a_target_no_longer_allowed_is_not_called_whatever_its_name_resolves_to() {
    // Arrange: two webhooks made while loopback was allowed, one naming an
    // address and one a host name; then the gateway restarts on the same
    // store allowing only another network.
    let cloud = TestCloud::start(TestApp::sim_config(Duration::from_millis(100))).await;
    let receiver = Receiver::start().await;
    let port = receiver.address.port();
    let mut flags = cloud.flags();
    flags.extend(WEBHOOK_FLAGS);
    flags.extend(["--poll-interval", "100ms"]);
    let mut gateway = Gateway::start(&flags).await;
    let by_address = subscribe(
        &gateway,
        "tenant-a",
        json!({"url": format!("http://127.0.0.1:{port}/a")}),
    )
    .await;
    let by_name = subscribe(
        &gateway,
        "tenant-a",
        json!({"url": format!("http://localhost:{port}/n")}),
    )
    .await;
    gateway.stop().await;
    let mut flags = cloud.flags();
    flags.extend([
        "--webhook-allow",
        "10.0.0.0/8",
        "--webhook-retry-base",
        "100ms",
        "--poll-interval",
        "100ms",
    ]);
    let gateway = Gateway::start(&flags).await;

    // Act: a job's events are to be delivered to both.
    gateway.create_ok("tenant-a", &snapshot('a', 1)).await;

    // Assert: attempts fail without a connection.
    for webhook in [&by_address, &by_name] {
        let id = webhook["id"].as_str().unwrap();
        let refused = wait_until(|| async {
            deliveries(&gateway, "tenant-a", id)
                .await
                .iter()
                .any(|d| d["attempts"].as_u64() >= Some(2))
        })
        .await;
        assert!(refused, "attempts were made");
        for delivery in deliveries(&gateway, "tenant-a", id).await {
            if delivery["attempts"] != 0 {
                assert!(
                    delivery["last_error"]
                        .as_str()
                        .unwrap()
                        .contains("is not among the webhook targets"),
                    "{delivery}"
                );
                assert!(delivery["last_status_code"].is_null(), "{delivery}");
            }
        }
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgresql_deliver_each_event_once() {
    let db = TestDatabase::postgres().await;
    let cloud = TestCloud::start(TestApp::sim_config(Duration::from_millis(200))).await;
    let mut flags = cloud.flags_on(db.url());
    flags.extend(WEBHOOK_FLAGS);
    flags.extend([
        "--poll-interval",
        "100ms",
        "--lease-ttl",
        "2s",
        "--rate-limit",
        "0",
    ]);
    let a = Gateway::start(&flags).await;
    let b = Gateway::start(&flags).await;
    let receiver = Receiver::start().await;
    let webhook = subscribe(&a, "tenant-a", json!({"url": receiver.url("/")})).await;
    receiver.trust(webhook["secret"].as_str().unwrap());

    // Act: jobs created on both replicas, each worked by either.
    let mut jobs = Vec::new();
    for n in 1..=3 {
        let on = if n % 2 == 0 { &a } else { &b };
        jobs.push(
            on.create_ok("tenant-a", &snapshot('a', n)).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    receiver
        .wait_for("every job's success", |d| {
            jobs.iter().all(|job| has(d, job, "job.succeeded"))
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Assert: every event of the tenant, each sent once.
    let project = crate::helpers::PROJECT_A;
    let events = a
        .store()
        .events_after(project, 0, &Default::default(), 1000)
        .await
        .expect("events");
    let received = receiver.received();
    let ids: BTreeSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), received.len(), "no delivery sent twice");
    assert_eq!(received.len(), events.len(), "one delivery per event");
    assert!(received.iter().all(|r| r.answered == 204));
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_in_time_gets_the_delivery_again() {
    let mut flags = WEBHOOK_FLAGS.to_vec();
    flags.extend(["--webhook-timeout", "500ms"]);
    let app = TestApp::spawn_live(Duration::from_millis(100), &flags).await;
    let receiver = Receiver::start().await;
    receiver.hang_next(1);
    let webhook = subscribe(
        &app,
        "tenant-a",
        json!({"url": receiver.url("/"), "event_types": ["job.created"]}),
    )
    .await;
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    receiver.trust(&secret);
    let id = webhook["id"].as_str().unwrap();

    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;

    let delivered = receiver
        .wait_for_event(job["id"].as_str().unwrap(), "job.created")
        .await;
    let received = receiver.received();
    assert_eq!(
        received.len(),
        2,
        "the attempt that got no answer, then another"
    );
    assert_eq!(received[0].id, received[1].id);
    assert_eq!(delivered.len(), 1);
    let settled = wait_until(|| async {
        deliveries(&app, "tenant-a", id)
            .await
            .first()
            .is_some_and(|d| d["status"] == "succeeded")
    })
    .await;
    assert!(settled);
    assert_eq!(deliveries(&app, "tenant-a", id).await[0]["attempts"], 2);
    let logged = crate::helpers::logs();
    assert!(
        logged.contains("no answer within 500ms"),
        "the timeout is logged"
    );
    assert!(!logged.contains(&secret), "no secret in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_holds_up_only_its_own_deliveries() {
    let mut flags = WEBHOOK_FLAGS.to_vec();
    flags.extend(["--webhook-timeout", "30s"]);
    let app = TestApp::spawn_live(Duration::from_millis(100), &flags).await;
    let stuck = Receiver::start().await;
    stuck.hang_next(1000);
    let healthy = Receiver::start().await;
    for receiver in [&stuck, &healthy] {
        let webhook = subscribe(&app, "tenant-a", json!({"url": receiver.url("/")})).await;
        receiver.trust(webhook["secret"].as_str().unwrap());
    }

    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let job_id = job["id"].as_str().unwrap();

    let delivered = healthy.wait_for_event(job_id, "job.succeeded").await;
    assert_eq!(types_of(&delivered, job_id), A_JOBS_LIFE);
    assert_eq!(
        stuck.received().len(),
        1,
        "the hanging receiver is still on its first delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_mid_delivery_hands_its_webhook_to_another_at_once() {
    // Arrange: replica a delivers to a receiver that holds its first
    // request; a claim would last minutes (ten attempts of 30 s).
    let db = TestDatabase::postgres().await;
    let cloud = TestCloud::start(TestApp::sim_config(Duration::from_millis(100))).await;
    let mut flags = cloud.flags_on(db.url());
    flags.extend(WEBHOOK_FLAGS);
    flags.extend(["--poll-interval", "100ms", "--webhook-timeout", "30s"]);
    let mut a = Gateway::start(&flags).await;
    let receiver = Receiver::start().await;
    receiver.hang_next(1);
    let webhook = subscribe(
        &a,
        "tenant-a",
        json!({"url": receiver.url("/"), "event_types": ["job.created"]}),
    )
    .await;
    receiver.trust(webhook["secret"].as_str().unwrap());
    let job = a.create_ok("tenant-a", &snapshot('a', 1)).await;
    let job_id = job["id"].as_str().unwrap();
    assert!(
        wait_until(|| async { !receiver.received().is_empty() }).await,
        "a is delivering"
    );

    // Act: b starts, and a stops while its attempt hangs.
    let _b = Gateway::start(&flags).await;
    a.stop().await;

    // Assert: b delivers it now, not when a's claim would have run out.
    let delivered = receiver.wait_for_event(job_id, "job.created").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(receiver.received().len(), 2, "a's cut attempt, then b's");
}
