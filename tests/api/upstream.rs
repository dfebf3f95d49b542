//! How the gateway uses Keystone and Cinder: shared tokens, renewal, and a
//! worker whose upstream calls grow with tenants, not with jobs.

use openstack_sim::Op;

use crate::helpers::{PROJECT_A, PROJECT_B, TestApp, snapshot};

#[tokio::test]
async fn concurrent_first_requests_of_a_tenant_share_one_keystone_call() {
    let app = TestApp::spawn().await;
    app.sim.reset_calls();

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let request = app.request(reqwest::Method::GET, "/snapshots", Some("tenant-a"));
        requests.spawn(async move { request.send().await.map(|r| r.status()) });
    }
    let statuses = requests.join_all().await;

    assert!(
        statuses
            .iter()
            .all(|s| s.as_ref().is_ok_and(|s| *s == reqwest::StatusCode::OK)),
        "{statuses:?}"
    );
    assert_eq!(app.sim.calls(Op::TokenIssue), 1);
    assert_eq!(app.sim.calls(Op::SnapshotList), 16);
}

#[tokio::test]
async fn a_token_cinder_refuses_is_renewed_once_and_the_call_succeeds() {
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/snapshots").await;
    app.sim.reset_calls();

    app.sim.expire_tokens();
    let answer = app.get("tenant-a", "/snapshots").await;

    assert_eq!(answer.status, reqwest::StatusCode::OK, "{}", answer.text);
    assert_eq!(app.sim.calls(Op::TokenIssue), 1);
    assert_eq!(
        app.sim.calls(Op::SnapshotList),
        2,
        "one refused, one retried"
    );
}

#[tokio::test]
async fn jobs_finish_when_the_token_expires_while_they_run() {
    let app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;

    app.sim.expire_tokens();
    app.finish_backups();
    app.cycle().await;

    let job = app.job("tenant-a", job["id"].as_str().expect("id")).await;
    assert_eq!(job["state"], "succeeded");
}

#[tokio::test]
async fn a_worker_cycle_costs_one_listing_per_tenant_whatever_the_number_of_jobs() {
    // Arrange: 12 running jobs over two tenants.
    let app = TestApp::spawn().await;
    let tenants = [("tenant-a", PROJECT_A), ("tenant-b", PROJECT_B)];
    for (t, (tenant, project)) in tenants.iter().enumerate() {
        for i in 0..6 {
            let volume_id = format!("30000000-0000-4000-8000-{t:02}{i:010}");
            let snapshot_id = format!("40000000-0000-4000-8000-{t:02}{i:010}");
            app.add_snapshot(project, &volume_id, &snapshot_id);
            app.create_ok(tenant, &snapshot_id).await;
        }
    }

    // Act: a cycle while every backup is still creating.
    app.sim.reset_calls();
    app.cycle().await;

    // Assert: one listing per tenant, no per-job read.
    assert_eq!(app.sim.calls(Op::BackupList), 2);
    assert_eq!(app.sim.calls(Op::BackupDetail), 0);
    assert_eq!(app.sim.calls(Op::BackupShow), 0);

    // Act: every backup finishes.
    app.finish_backups();
    app.sim.reset_calls();
    app.cycle().await;

    // Assert: per tenant the listing of its creating backups, and one of
    // its recently updated ones that shows how each finished backup
    // ended: no read per job.
    assert_eq!(app.sim.calls(Op::BackupList), 2);
    assert_eq!(app.sim.calls(Op::BackupDetail), 2);
    assert_eq!(app.sim.calls(Op::BackupShow), 0);
    let done = app.get("tenant-a", "/jobs?state=succeeded").await;
    assert_eq!(done.body["jobs"].as_array().map(Vec::len), Some(6));

    // Nothing left to do: a cycle with no running job calls nothing.
    app.sim.reset_calls();
    app.cycle().await;
    assert!(
        app.sim.call_counts().is_empty(),
        "{:?}",
        app.sim.call_counts()
    );
}

#[tokio::test]
async fn a_problems_instance_is_the_request_id_header() {
    let app = TestApp::spawn().await;
    let answer = app
        .get(
            "tenant-a",
            "/snapshots/00000000-0000-4000-8000-00000000ffff",
        )
        .await;
    let instance = answer.body["instance"].as_str().expect("instance");
    assert!(instance.starts_with("req-"));
    assert_eq!(answer.header("x-request-id"), Some(instance));
}

#[tokio::test]
async fn the_worker_reads_every_page_of_a_tenants_creating_backups() {
    // Five running jobs, listed two per page: three listings a cycle, and
    // none of the jobs on later pages is taken for finished.
    let app = TestApp::spawn_with(&["--upstream-page-size", "2"]).await;
    let mut jobs = Vec::new();
    for i in 0..5 {
        let volume_id = format!("50000000-0000-4000-8000-{i:012}");
        let snapshot_id = format!("60000000-0000-4000-8000-{i:012}");
        app.add_snapshot(PROJECT_A, &volume_id, &snapshot_id);
        jobs.push(
            app.create_ok("tenant-a", &snapshot_id).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }

    app.sim.reset_calls();
    app.cycle().await;

    assert_eq!(app.sim.calls(Op::BackupList), 3);
    assert_eq!(app.sim.calls(Op::BackupShow), 0);
    for job_id in &jobs {
        assert_eq!(app.job("tenant-a", job_id).await["state"], "running");
    }
}

#[tokio::test]
async fn a_token_refused_by_cinders_version_discovery_is_renewed_once() {
    // Arrange: a running job; after a restart the gateway holds a token
    // (a caller listed snapshots) but has not asked Cinder for its
    // microversions yet; then every token is revoked (as when Keystone's
    // keys change) and the backup finishes.
    let mut app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    app.restart().await;
    app.get("tenant-a", "/snapshots").await;
    app.sim.expire_tokens();
    app.finish_backups();

    // Act: the worker's listing is the first call that needs the
    // microversions.
    app.cycle().await;

    // Assert: the discovery's 401 renewed the token and the job ended.
    let job = app.job("tenant-a", job["id"].as_str().expect("id")).await;
    assert_eq!(job["state"], "succeeded", "{job}");
}
