//! No secret reaches the logs, even at `trace`: the callers' tokens, the
//! JWT secret, the tenants' application-credential secrets, Keystone's
//! tokens.

use openstack_sim::{Seed, Sim, SimConfig};
use secrecy::SecretString;
use serde_json::json;

use crate::{
    chaos::{JWT_SECRET, gateway_flags},
    process::GatewayProcess,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_reach_the_logs_at_trace_level() {
    // Arrange: the gateway binary logging everything, in front of the
    // simulator.
    let seed = Seed::demo();
    let sim = Sim::new(SimConfig::default(), seed.clone());
    let cloud = sim.start().await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("dir");
    let store = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let mut gateway =
        GatewayProcess::new(dir.path(), gateway_flags(dir.path(), &cloud, &seed, &store));
    gateway.log_filter = "trace";
    gateway.start().await;
    let token = backup_gateway::auth::sign_hs256(
        &SecretString::from(JWT_SECRET.to_owned()),
        &json!({
            "tenant": seed.tenants[0].name,
            "sub": "log-test",
            "iss": "chaos",
            "aud": "backup-gateway",
            "scope": "backups:read backups:write",
            "exp": chrono::Utc::now().timestamp() + 3600,
        }),
    )
    .expect("sign");
    let client = reqwest::Client::new();
    let snapshot = &seed.tenants[0].snapshots[0].id;

    // Act: a create (Keystone and Cinder called), reads, and a refused
    // token.
    let created: serde_json::Value = client
        .post(format!("{}/snapshots/{snapshot}/backups", gateway.address))
        .bearer_auth(&token)
        .json(&json!({"name": "logged"}))
        .send()
        .await
        .expect("created")
        .json()
        .await
        .expect("job");
    let job = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"));
    for path in [
        format!("/jobs/{job}?wait=1"),
        "/snapshots".to_owned(),
        "/jobs".to_owned(),
    ] {
        let answer = client
            .get(format!("{}{path}", gateway.address))
            .bearer_auth(&token)
            .send()
            .await
            .expect("answered");
        assert!(answer.status().is_success(), "{path}");
    }
    let forged = format!("{}x", &token[..token.len() - 1]);
    client
        .get(format!("{}/jobs", gateway.address))
        .bearer_auth(&forged)
        .send()
        .await
        .expect("answered");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    gateway.kill();
    let logs = gateway.logs();

    // Assert: much was logged, and no secret.
    assert!(logs.contains("TRACE"), "not at trace level:\n{logs}");
    assert!(logs.contains("issued Keystone token"), "{logs}");
    // Each Cinder call is logged with Cinder's request id.
    let create_line = logs
        .lines()
        .find(|l| l.contains("Cinder answered") && l.contains("create_backup"))
        .unwrap_or_else(|| panic!("no line for the create:\n{logs}"));
    assert!(
        create_line.contains("upstream_request_id=\"req-"),
        "{create_line}"
    );
    // ... in the request's span (its id, the tenant) and with the job id,
    // though the POST runs in a task of its own.
    for field in [" request_id=\"req-", "tenant=\"tenant-a\"", "job_id="] {
        assert!(create_line.contains(field), "{field} in {create_line}");
    }
    let token_signature = token.rsplit('.').next().expect("signature");
    let mut secrets = vec![
        ("the caller's token", token.as_str()),
        ("the caller's token's signature", token_signature),
        ("the forged token", forged.as_str()),
        ("the JWT secret", JWT_SECRET),
        ("a Keystone token", "gAAAAA"),
    ];
    for tenant in &seed.tenants {
        for credential in &tenant.app_credentials {
            secrets.push((
                "an application-credential secret",
                credential.secret.as_str(),
            ));
        }
    }
    for (what, secret) in secrets {
        assert!(!logs.contains(secret), "{what} is in the logs");
    }
}

#[tokio::test]
async fn a_request_is_logged_with_its_id_tenant_route_and_status() {
    let app = crate::helpers::TestApp::spawn().await;

    let answer = app
        .get("tenant-a", "/jobs/0193a0c4-7b3e-7f00-8000-000000000001")
        .await;

    answer.assert_problem(404, "job-not-found");
    let request_id = answer
        .header("x-request-id")
        .expect("request id")
        .to_owned();
    let logs = crate::helpers::logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&request_id) && l.contains("request refused"))
        .unwrap_or_else(|| panic!("no line for {request_id}:\n{logs}"));
    // In the request's span (`request{...}`), which every line of the
    // request carries.
    for field in [
        "tenant=\"tenant-a\"",
        "status=404}",
        "matched_path=\"/jobs/{job_id}\"",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
}

#[tokio::test]
async fn each_answer_is_one_info_line_and_the_probes_stay_at_debug() {
    let app = crate::helpers::TestApp::spawn().await;

    let answer = app.get("tenant-a", "/snapshots").await;
    let probe = app.get("tenant-a", "/healthz").await;

    let id_of = |answer: &crate::helpers::Answer| {
        answer
            .header("x-request-id")
            .expect("request id")
            .to_owned()
    };
    let (listing, healthz) = (id_of(&answer), id_of(&probe));
    let logs = crate::helpers::logs();
    let answered = |request_id: &str| {
        logs.lines()
            .find(|l| l.contains(request_id) && l.contains("request finished"))
            .unwrap_or_else(|| panic!("no answer line for {request_id}:\n{logs}"))
            .to_owned()
    };
    let line = answered(&listing);
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.contains("status=200") && line.contains("elapsed_ms="),
        "{line}"
    );
    assert!(line.contains("matched_path=\"/snapshots\""), "{line}");
    let line = answered(&healthz);
    assert!(line.contains("DEBUG"), "{line}");
}

#[tokio::test]
async fn a_request_whose_client_went_away_is_logged_as_cancelled() {
    let app = crate::helpers::TestApp::spawn().await;
    let job = app
        .create_ok("tenant-a", &crate::helpers::snapshot('a', 1))
        .await;
    let path = format!("/jobs/{}?wait=30", job["id"].as_str().expect("id"));

    // A long poll whose client gives up after a moment.
    let gone = app
        .request(reqwest::Method::GET, &path, Some("tenant-a"))
        .header("x-request-id", "poll-given-up-1")
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;

    assert!(gone.is_err(), "the client gave up");
    let mut line = None;
    for _ in 0..100 {
        line = crate::helpers::logs()
            .lines()
            .find(|l| l.contains("poll-given-up-1") && l.contains("request cancelled"))
            .map(str::to_owned);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let line = line.unwrap_or_else(|| panic!("no cancelled line:\n{}", crate::helpers::logs()));
    assert!(
        line.contains(" INFO ") && line.contains("elapsed_ms="),
        "{line}"
    );
}
