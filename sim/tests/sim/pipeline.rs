//! What every Cinder request goes through: the token, the microversion,
//! the path's project, the headers, version discovery and the call
//! counters (exchanges 33, 34, 41, 52-54, 60-65).

use reqwest::{Method, StatusCode};
use serde_json::json;

use openstack_sim::Op;

use crate::support::{Answer, Harness, is_request_id};

fn assert_keystonemiddleware_401(h: &Harness, answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.body,
        json!({"error": {"code": 401, "title": "Unauthorized",
            "message": "The request you have made requires authentication."}})
    );
    // keystonemiddleware names Keystone's root, without /v3 (exchange 60).
    let root = h.running.keystone_url.trim_end_matches("/v3");
    let expected = format!("Keystone uri=\"{root}\"");
    assert_eq!(answer.header("www-authenticate"), Some(expected.as_str()));
    assert!(
        answer
            .header("x-openstack-request-id")
            .is_some_and(is_request_id)
    );
    assert!(answer.header("openstack-api-version").is_none());
    assert!(answer.header("vary").is_none());
}

#[tokio::test]
async fn missing_garbage_and_expired_tokens_get_keystonemiddlewares_401() {
    let h = Harness::start().await;
    let url = format!("{}/snapshots", h.running.endpoint(&h.project(0)));

    // Exchanges 60-61.
    let answer = h.send(Method::GET, &url, &[], None).await;
    assert_keystonemiddleware_401(&h, &answer);
    // Exchange 62.
    let answer = h
        .send(
            Method::GET,
            &url,
            &[("x-auth-token", "garbage-token-garbage")],
            None,
        )
        .await;
    assert_keystonemiddleware_401(&h, &answer);

    let token = h.token(0).await;
    h.sim().expire_tokens();
    let answer = h
        .send(Method::GET, &url, &[("x-auth-token", token.as_str())], None)
        .await;
    assert_keystonemiddleware_401(&h, &answer);
}

#[tokio::test]
async fn another_projects_token_on_the_path_is_a_malformed_url() {
    let h = Harness::start().await;
    let token_b = h.token(1).await;
    // Exchanges 63 and 64.
    let get = h
        .cinder(
            Method::GET,
            &h.project(0),
            "/snapshots",
            &token_b,
            None,
            None,
        )
        .await;
    let post = h.create_backup(0, 0, &token_b, None, json!({})).await;
    for answer in [get, post] {
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            answer.body,
            json!({"badRequest": {"code": 400, "message": "Malformed request url"}})
        );
        assert_eq!(answer.header("openstack-api-version"), Some("volume 3.0"));
    }
    assert!(h.sim().backups(&h.project(0)).is_empty());
}

#[tokio::test]
async fn unsupported_microversion_is_406_and_malformed_is_400() {
    let h = Harness::start().await;
    let token = h.token(0).await;

    // Exchanges 52 and 54: 406 echoing the version asked for.
    let answer = h
        .cinder(
            Method::GET,
            &h.project(0),
            "/snapshots",
            &token,
            Some("3.99"),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        answer.body,
        json!({"computeFault": {"code": 406,
            "message": "Version 3.99 is not supported by the API. Minimum is 3.0 and maximum is 3.71."}})
    );
    assert_eq!(answer.header("openstack-api-version"), Some("volume 3.99"));
    assert_eq!(answer.header("vary"), Some("OpenStack-API-Version"));

    // Exchange 53: 400 and no version headers.
    let answer = h.create_backup(0, 0, &token, Some("abc"), json!({})).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.body["badRequest"]["message"],
        "API Version String abc is of invalid format. Must be of format MajorNum.MinorNum."
    );
    assert!(answer.header("openstack-api-version").is_none());
    assert!(h.sim().backups(&h.project(0)).is_empty());

    // `latest` is served at the maximum.
    let answer = h
        .cinder(
            Method::GET,
            &h.project(0),
            "/snapshots",
            &token,
            Some("latest"),
            None,
        )
        .await;
    assert_eq!(answer.header("openstack-api-version"), Some("volume 3.71"));
}

#[tokio::test]
async fn cinder_answers_carry_its_own_request_id_twice() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let url = format!("{}/snapshots", h.running.endpoint(&h.project(0)));
    let mine = "req-11111111-2222-4333-8444-555555555555";
    // Exchange 41: a caller's X-OpenStack-Request-ID is not echoed.
    let answer = h
        .send(
            Method::GET,
            &url,
            &[
                ("x-auth-token", token.as_str()),
                ("x-openstack-request-id", mine),
            ],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let id = answer.header("x-openstack-request-id").expect("request id");
    assert!(is_request_id(id), "{id}");
    assert_ne!(id, mine);
    assert_eq!(answer.header("x-compute-request-id"), Some(id));
    assert_eq!(answer.header("openstack-api-version"), Some("volume 3.0"));
    assert_eq!(answer.header("vary"), Some("OpenStack-API-Version"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn version_discovery_names_the_microversion_range() {
    let h = Harness::start().await;
    // Exchange 33: the root needs no token and answers 300.
    let root = h
        .send(
            Method::GET,
            &format!("{}/", h.running.cinder_url),
            &[],
            None,
        )
        .await;
    assert_eq!(root.status, StatusCode::MULTIPLE_CHOICES);
    // Exchange 34: /v3/ answers 200 with the same body.
    let token = h.token(0).await;
    let v3 = h
        .send(
            Method::GET,
            &format!("{}/v3/", h.running.cinder_url),
            &[("x-auth-token", token.as_str())],
            None,
        )
        .await;
    assert_eq!(v3.status, StatusCode::OK);
    assert_eq!(root.body, v3.body);
    let version = &v3.body["versions"][0];
    assert_eq!(version["id"], "v3.0");
    assert_eq!(version["status"], "CURRENT");
    assert_eq!(version["version"], "3.71");
    assert_eq!(version["min_version"], "3.0");
    assert_eq!(
        version["links"][1],
        json!({"rel": "self", "href": format!("{}/v3/", h.running.cinder_url)})
    );
    assert_eq!(h.sim().calls(Op::Versions), 2);
}

#[tokio::test]
async fn every_routed_call_is_counted_until_reset() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let path = format!("/snapshots/{}", h.snapshot(0, 0));
    for _ in 0..3 {
        h.cinder(Method::GET, &h.project(0), &path, &token, None, None)
            .await;
    }
    // Refused calls count too.
    let url = format!("{}{path}", h.running.endpoint(&h.project(0)));
    h.send(Method::GET, &url, &[], None).await;

    assert_eq!(h.sim().calls(Op::SnapshotShow), 4);
    assert_eq!(h.sim().calls(Op::TokenIssue), 1);
    assert_eq!(h.sim().calls(Op::BackupCreate), 0);
    let counts = h.sim().call_counts();
    assert_eq!(counts.get("SnapshotShow"), Some(&4));
    assert!(!counts.contains_key("BackupCreate"));

    h.sim().reset_calls();
    assert_eq!(h.sim().calls(Op::SnapshotShow), 0);
    assert!(h.sim().call_counts().is_empty());
}

#[tokio::test]
async fn version_discovery_names_the_configured_maximum() {
    let older = openstack_sim::Microversion {
        major: 3,
        minor: 40,
    };
    let sim = openstack_sim::Sim::new(
        openstack_sim::SimConfig {
            max_microversion: older,
            ..Default::default()
        },
        openstack_sim::Seed::demo(),
    );
    let running = sim.start().await.expect("starts");

    let body: serde_json::Value = reqwest::get(format!("{}/", running.cinder_url))
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");

    assert_eq!(body["versions"][0]["version"], "3.40");
    assert_eq!(body["versions"][0]["min_version"], "3.0");
}
