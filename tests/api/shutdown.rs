//! Stopping: no new connection, long polls answered at once with the job
//! as it is, the worker's passes ended between steps, exit clean.

use std::time::Duration;

use crate::helpers::{TestApp, snapshot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_a_long_poll_answers_at_once_with_the_job_as_it_is() {
    // Arrange: a running job (its backup takes an hour) and a long poll of
    // a minute on it.
    let mut app = TestApp::spawn_live(Duration::from_secs(3600), &["--max-wait", "60s"]).await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let id = job["id"].as_str().expect("id").to_owned();
    let poll = {
        let request = app
            .client
            .get(format!("{}/jobs/{id}?wait=60", app.address))
            .bearer_auth(app.token("tenant-a"));
        tokio::spawn(async move { request.send().await })
    };
    for _ in 0..500 {
        if app.waiting() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.waiting(), 1, "the long poll never waited");

    // Act: stop the gateway (as SIGTERM does). It stops within its grace
    // (20 s), well before the poll's minute.
    app.gateway.stop().await;
    let answer = tokio::time::timeout(Duration::from_secs(20), poll)
        .await
        .expect("the long poll was answered before its minute")
        .expect("joined")
        .expect("answered");

    // Assert: the job as it is, not an error.
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.expect("job");
    assert_eq!(body["id"], id);
    assert!(
        matches!(body["state"].as_str(), Some("queued" | "running")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_the_binary_gives_its_leases_back_and_exits_0() {
    use openstack_sim::{Seed, Sim, SimConfig};

    // Arrange: the binary, serving.
    let seed = Seed::demo();
    let sim = Sim::new(SimConfig::default(), seed.clone());
    let cloud = sim.start().await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("dir");
    let store = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let mut gateway = crate::process::GatewayProcess::new(
        dir.path(),
        crate::chaos::gateway_flags(dir.path(), &cloud, &seed, &store),
    );
    gateway.start().await;

    // Act
    let code = gateway.terminate().await;

    // Assert
    assert_eq!(code, Some(0), "{}", gateway.logs());
    let logs = gateway.logs();
    assert!(logs.contains("backup-gateway stopped"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_a_request_under_way_is_answered_not_cut() {
    use openstack_sim::{Fault, FaultKind, Op};

    // Arrange: a create whose snapshot read Cinder answers in 2 s.
    let mut app = TestApp::spawn().await;
    app.get("tenant-a", "/jobs").await;
    app.sim.inject(Fault {
        op: Op::SnapshotShow,
        kind: FaultKind::Delay(Duration::from_secs(2)),
        times: 1,
    });
    let request = app
        .client
        .post(format!(
            "{}/snapshots/{}/backups",
            app.address,
            snapshot('a', 1)
        ))
        .bearer_auth(app.token("tenant-a"))
        .json(&serde_json::json!({}));
    let create = tokio::spawn(async move { request.send().await });
    for _ in 0..500 {
        if app.sim.calls(Op::SnapshotShow) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Act: stop while Cinder is still answering.
    app.gateway.stop().await;
    let answer = create.await.expect("joined").expect("answered, not cut");

    // Assert
    assert_eq!(answer.status(), 202);
}

#[tokio::test]
async fn once_stopping_the_worker_starts_no_new_submission() {
    use openstack_sim::{Fault, FaultKind, Op};

    // Arrange: a job whose first POST Cinder refused with a 503, due again.
    let app = TestApp::spawn().await;
    app.sim.inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::Status(503),
        times: 1,
    });
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let id = job["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(Duration::from_millis(30)).await;

    // Act: the stop signal, then what would be the next cycle.
    app.begin_shutdown();
    app.cycle().await;

    // Assert: no second POST; the job waits in the store for the next start.
    assert_eq!(app.sim.calls(Op::BackupCreate), 1);
    assert_eq!(app.job("tenant-a", &id).await["state"], "queued");
}
