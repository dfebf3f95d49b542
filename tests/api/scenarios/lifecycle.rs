//! Scenarios of the job life cycle under faults, on both upstreams: a
//! gateway killed with SIGKILL right after its `202`, a replica on
//! PostgreSQL killed while it works the tenant, and a cancel that comes too
//! late.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{JOB_DEADLINE, Upstream, id_of};
use crate::{databases::TestDatabase, process::GatewayProcess};

/// Back up a snapshot through a gateway process, kill it with SIGKILL as
/// soon as it answered `202`, start it again on the same store: the job
/// succeeds, with exactly one backup carrying its id.
pub async fn sigkill_after_202_still_ends_in_one_backup(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let mut flags = gateway.process_flags(&database_url);
    // The killed process never gave its tenant lease back: on SQLite (one
    // process) the restarted one takes it back at once, not after an hour.
    flags.extend(["--lease-ttl".to_owned(), "1h".to_owned()]);
    let mut process = GatewayProcess::new(dir.path(), flags);
    process.start().await;
    let token = gateway.token("tenant-a");
    let client = reqwest::Client::new();

    let created = client
        .post(format!(
            "{}/snapshots/{snapshot_id}/backups",
            process.address
        ))
        .bearer_auth(&token)
        .json(&json!({"name": "scenario-sigkill"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    let job: Value = created.json().await.expect("job");
    process.kill();
    process.start().await;

    let job_id = id_of(&job);
    let deadline = tokio::time::Instant::now() + JOB_DEADLINE;
    let get = |path: String| {
        let request = client
            .get(format!("{}{path}", process.address))
            .bearer_auth(&token);
        async move {
            let answer = request.send().await.expect("answered");
            answer.json::<Value>().await.expect("JSON")
        }
    };
    let done = loop {
        let job = get(format!("/jobs/{job_id}?wait=20")).await;
        if job["done"] == true {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job not done: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    let made = get(format!("/snapshots/{snapshot_id}/backups")).await;
    assert_one_backup_of(&made, &done);
}

/// Asserts that the snapshot view `made` holds exactly one backup carrying
/// the finished job's id, the one the job names, and that it is available.
#[track_caller]
fn assert_one_backup_of(made: &Value, done: &Value) {
    let carrying: Vec<&Value> = made["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .filter(|b| b["job_id"] == done["id"])
        .collect();
    assert_eq!(carrying.len(), 1, "{made}");
    assert_eq!(carrying[0]["id"], done["backup_id"]);
    assert_eq!(carrying[0]["status"], "available");
}

/// Two replicas on one PostgreSQL: back up a snapshot through the first
/// (alone, so its worker takes the tenant's lease), start the second, and
/// kill the first (SIGKILL) while Cinder makes the backup: the second takes
/// the tenant over once the lease expires, and the job succeeds with
/// exactly one backup carrying its id.
pub async fn a_replica_killed_while_it_works_the_tenant_is_taken_over(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let _slow = cloud.slow_backups();
    let gateway = cloud.gateway();
    let db = TestDatabase::postgres().await;
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let mut replicas: Vec<GatewayProcess> = dirs
        .iter()
        .map(|dir| {
            let mut flags = gateway.process_flags(db.url());
            flags.extend(["--lease-ttl".to_owned(), "2s".to_owned()]);
            GatewayProcess::new(dir.path(), flags)
        })
        .collect();
    replicas[0].start().await;
    let token = gateway.token("tenant-a");
    let client = reqwest::Client::new();
    let get = |address: &str, path: String| {
        let request = client.get(format!("{address}{path}")).bearer_auth(&token);
        async move {
            let answer = request.send().await.expect("answered");
            answer.json::<Value>().await.expect("JSON")
        }
    };
    let created = client
        .post(format!(
            "{}/snapshots/{snapshot_id}/backups",
            replicas[0].address
        ))
        .bearer_auth(&token)
        .json(&json!({"name": "scenario-replica-killed"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    let job_id = id_of(&created.json::<Value>().await.expect("job"));

    let holds_tenant = |ready: &Value| {
        ready["leased_tenants"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "tenant-a"))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !holds_tenant(&get(&replicas[0].address, "/readyz".into()).await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first replica never took tenant-a"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replicas[1].start().await;
    let before = get(&replicas[0].address, format!("/jobs/{job_id}")).await;
    replicas[0].kill();
    // Still running when its replica died: only the survivor can end it.
    assert_eq!(before["state"], "running", "{before}");
    let survivor = &replicas[1].address;

    let deadline = tokio::time::Instant::now() + JOB_DEADLINE;
    let done = loop {
        let job = get(survivor, format!("/jobs/{job_id}?wait=20")).await;
        if job["done"] == true {
            break job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job not done: {job}"
        );
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    let made = get(survivor, format!("/snapshots/{snapshot_id}/backups")).await;
    assert_one_backup_of(&made, &done);
}

/// Cancel a job whose backup Cinder already has: `409`, and the backup
/// goes on to `available`.
pub async fn cancelling_a_job_cinder_has_is_409_and_the_backup_completes(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();
    let created = gateway
        .create_backup("tenant-a", &snapshot_id, json!({"name": "scenario-cancel"}))
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let job_id = id_of(&created.body);
    assert_eq!(created.body["state"], "running", "{}", created.text);

    let refused = gateway.cancel("tenant-a", &job_id).await;

    refused.assert_problem(409, "job-not-cancellable");
    assert_eq!(refused.body["job_id"], job_id.as_str());
    let done = gateway.wait_done("tenant-a", &job_id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
}
