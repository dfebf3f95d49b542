//! Keystone: token issue, validation and revocation (exchanges 01-05).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Harness, is_request_id, keys, sorted};

#[tokio::test]
async fn app_credential_token_comes_in_header_with_catalog_pointing_at_cinder() {
    let h = Harness::start().await;
    let answer = h.issue("demo-appcred-a", "demo-secret-a").await;

    // Exchange 01: 201, the token in X-Subject-Token, Vary and a request id.
    assert_eq!(answer.status, StatusCode::CREATED);
    assert!(
        answer
            .header("x-subject-token")
            .is_some_and(|t| t.len() > 32)
    );
    assert_eq!(answer.header("vary"), Some("X-Auth-Token"));
    assert!(
        answer
            .header("x-openstack-request-id")
            .is_some_and(is_request_id)
    );

    let token = &answer.body["token"];
    assert_eq!(
        keys(token),
        sorted(&[
            "methods",
            "user",
            "audit_ids",
            "expires_at",
            "issued_at",
            "project",
            "is_domain",
            "roles",
            "catalog",
            "application_credential",
        ])
    );
    assert_eq!(token["methods"], json!(["application_credential"]));
    assert_eq!(token["project"]["id"], h.project(0));
    assert_eq!(
        token["project"]["domain"],
        json!({"id": "default", "name": "Default"})
    );
    assert_eq!(token["user"]["domain"]["id"], "default");
    assert!(token["user"]["password_expires_at"].is_null());
    assert_eq!(token["is_domain"], false);
    assert_eq!(
        token["application_credential"],
        json!({"id": "demo-appcred-a", "name": "demo-a", "restricted": true})
    );
    // Keystone's timestamp form: microseconds and a Z.
    let expires = token["expires_at"].as_str().expect("expires_at");
    assert!(expires.ends_with(".000000Z"), "{expires}");
    assert!(expires > token["issued_at"].as_str().expect("issued_at"));
    let roles: Vec<&str> = token["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| {
            assert_eq!(r["id"].as_str().map(str::len), Some(32));
            r["name"].as_str().expect("role name")
        })
        .collect();
    assert_eq!(roles, ["member", "reader"]);

    let endpoint = h.running.endpoint(&h.project(0));
    let catalog = token["catalog"].as_array().expect("catalog");
    for (kind, name) in [("block-storage", "cinder"), ("volumev3", "cinderv3")] {
        let service = catalog
            .iter()
            .find(|s| s["type"] == kind)
            .unwrap_or_else(|| panic!("{kind} in the catalog"));
        assert_eq!(service["name"], name);
        let public: Vec<&Value> = service["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .filter(|e| e["interface"] == "public")
            .collect();
        assert_eq!(public.len(), 1);
        assert_eq!(public[0]["url"], endpoint.as_str());
        assert_eq!(public[0]["region_id"], "RegionOne");
        assert_eq!(public[0]["region"], "RegionOne");
    }
    let identity = catalog
        .iter()
        .find(|s| s["type"] == "identity")
        .expect("identity");
    assert!(
        identity["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .all(|e| e["url"] == h.running.keystone_url.as_str())
    );
}

#[tokio::test]
async fn app_credential_by_name_with_user_name_and_domain_is_accepted() {
    let h = Harness::start().await;
    let body = json!({"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {
            "name": "demo-b", "secret": "demo-secret-b",
            "user": {"name": "user-b", "domain": {"name": "Default"}},
        },
    }}});
    let url = format!("{}/auth/tokens", h.running.keystone_url);
    let answer = h
        .send(Method::POST, &url, &[], Some(&body.to_string()))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.body["token"]["project"]["name"], "tenant-b");
}

#[tokio::test]
async fn password_token_scoped_to_a_project_by_name() {
    let h = Harness::start().await;
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "user-a", "domain": {"id": "default"}, "password": "demo-password-a"}}},
        "scope": {"project": {"name": "tenant-a", "domain": {"name": "Default"}}},
    }});
    let url = format!("{}/auth/tokens", h.running.keystone_url);
    let answer = h
        .send(Method::POST, &url, &[], Some(&body.to_string()))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let token = &answer.body["token"];
    assert_eq!(token["methods"], json!(["password"]));
    assert_eq!(token["project"]["id"], h.project(0));
    assert!(token.get("application_credential").is_none());

    let wrong = body.to_string().replace("demo-password-a", "nope");
    let answer = h.send(Method::POST, &url, &[], Some(&wrong)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_secret_is_401_naming_keystone() {
    let h = Harness::start().await;
    let answer = h.issue("demo-appcred-a", "wrong-secret").await;
    // Exchange 02.
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.body,
        json!({"error": {"code": 401, "title": "Unauthorized",
            "message": "The request you have made requires authentication."}})
    );
    let expected = format!("Keystone uri=\"{}\"", h.running.keystone_url);
    assert_eq!(answer.header("www-authenticate"), Some(expected.as_str()));
    assert_eq!(answer.header("vary"), Some("X-Auth-Token"));
    assert!(answer.header("x-subject-token").is_none());
}

#[tokio::test]
async fn unknown_app_credential_id_is_404() {
    let h = Harness::start().await;
    let answer = h.issue("8fd3045c41244a71b77e0ba01a261d72", "x").await;
    // Exchange 03: 404, not 401.
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.body["error"]["message"],
        "Could not find Application Credential: 8fd3045c41244a71b77e0ba01a261d72."
    );
    assert_eq!(answer.body["error"]["title"], "Not Found");
}

#[tokio::test]
async fn auth_body_without_the_method_payload_is_400() {
    let h = Harness::start().await;
    let body = json!({"auth": {"identity": {"methods": ["application_credential"]}}});
    let url = format!("{}/auth/tokens", h.running.keystone_url);
    let answer = h
        .send(Method::POST, &url, &[], Some(&body.to_string()))
        .await;
    // Exchange 04, word for word.
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.body["error"]["message"],
        "Expecting to find application_credential in identity. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."
    );
    let answer = h.send(Method::POST, &url, &[], Some("not json")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn scope_with_an_app_credential_is_401() {
    let h = Harness::start().await;
    let body = json!({"auth": {
        "identity": {"methods": ["application_credential"],
            "application_credential": {"id": "demo-appcred-a", "secret": "demo-secret-a"}},
        "scope": {"project": {"id": h.project(0)}},
    }});
    let url = format!("{}/auth/tokens", h.running.keystone_url);
    let answer = h
        .send(Method::POST, &url, &[], Some(&body.to_string()))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn token_validates_until_revoked() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let url = format!("{}/auth/tokens", h.running.keystone_url);
    let headers = [
        ("x-auth-token", token.as_str()),
        ("x-subject-token", token.as_str()),
    ];

    // Exchange 05: the same body as the issue.
    let answer = h.send(Method::GET, &url, &headers, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("x-subject-token"), Some(token.as_str()));
    assert_eq!(answer.body["token"]["project"]["id"], h.project(0));

    let answer = h.send(Method::DELETE, &url, &headers, None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);

    let other = h.token(1).await;
    let headers = [
        ("x-auth-token", other.as_str()),
        ("x-subject-token", token.as_str()),
    ];
    let answer = h.send(Method::GET, &url, &headers, None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}
