//! Scenarios of the job life cycle under faults, on both upstreams: a
//! gateway killed with SIGKILL right after its `202`, and a cancel that
//! comes too late.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{JOB_DEADLINE, Upstream, id_of};
use crate::process::GatewayProcess;

/// Back up a snapshot through a gateway process, kill it with SIGKILL as
/// soon as it answered `202`, start it again on the same store: the job
/// succeeds, with exactly one backup carrying its id.
pub async fn sigkill_after_202_still_ends_in_one_backup(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let mut process = GatewayProcess::new(dir.path(), gateway.process_flags(&database_url));
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
    let carrying: Vec<&Value> = made["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .filter(|b| b["job_id"] == job_id.as_str())
        .collect();
    assert_eq!(carrying.len(), 1, "{made}");
    assert_eq!(carrying[0]["id"], done["backup_id"]);
    assert_eq!(carrying[0]["status"], "available");
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
