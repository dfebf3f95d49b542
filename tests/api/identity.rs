//! Callers from a real identity provider, over real TCP: the key sources
//! (OIDC issuer, JWKS URL, PEM public keys) with a provider that rotates
//! its keys, goes down and is flooded; an attack suite of forged,
//! tampered and out-of-bounds tokens, each refused with nothing changed in
//! the store; read and write scopes; tenants from nested claims and kept
//! apart on every endpoint; and the start-up check of `iss` and `aud`.

use std::time::Duration;

use backup_gateway::Application;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{
        Answer, JWT_AUDIENCE, JWT_ISSUER, PROJECT_A, PROJECT_B, TestApp, TestCloud, parse_config,
        snapshot,
    },
    idp::{IdentityProvider, KeyKind, SigningKey},
};

/// The `WWW-Authenticate` of a refused token (RFC 6750 3.1).
const INVALID_TOKEN: &str = "Bearer error=\"invalid_token\"";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Good claims of a caller of `tenant` from `issuer`: both scopes, issued
/// now, valid for an hour.
fn claims_from(issuer: &str, tenant: &str) -> Value {
    json!({
        "tenant": tenant,
        "sub": "user-1",
        "iss": issuer,
        "aud": JWT_AUDIENCE,
        "scope": "backups:read backups:write",
        "iat": now(),
        "exp": now() + 3600,
    })
}

/// [`claims_from`] the tests' default issuer.
fn claims(tenant: &str) -> Value {
    claims_from(JWT_ISSUER, tenant)
}

/// `claims` with `patch` applied: a `null` removes the claim.
fn with(mut claims: Value, patch: Value) -> Value {
    for (name, value) in patch.as_object().expect("patch object") {
        if value.is_null() {
            claims.as_object_mut().expect("claims").remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

/// `method path` with `Authorization: Bearer token`.
async fn call(app: &TestApp, method: Method, path: &str, token: &str) -> Answer {
    let mut request = app
        .client
        .request(method.clone(), format!("{}{path}", app.address))
        .bearer_auth(token);
    if method == Method::POST {
        request = request.json(&json!({}));
    }
    Answer::read(request.send().await.expect("request sent")).await
}

/// `GET /snapshots` with `token`.
async fn list_snapshots(app: &TestApp, token: &str) -> Answer {
    call(app, Method::GET, "/snapshots", token).await
}

/// `POST /snapshots/{snapshot}/backups` with `token`.
async fn create(app: &TestApp, token: &str, snapshot_id: &str) -> Answer {
    let path = format!("/snapshots/{snapshot_id}/backups");
    call(app, Method::POST, &path, token).await
}

/// Asserts a `401 unauthenticated` naming `reason`, with
/// `WWW-Authenticate: Bearer error="invalid_token"`.
#[track_caller]
fn assert_invalid_token(answer: &Answer, reason: &str, case: &str) {
    assert_eq!(answer.status.as_u16(), 401, "{case}: {}", answer.text);
    answer.assert_problem(401, "unauthenticated");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(INVALID_TOKEN),
        "{case}"
    );
    let detail = answer.body["detail"].as_str().expect("detail");
    assert!(
        detail.contains(reason),
        "{case}: `{detail}` does not say `{reason}`"
    );
}

/// Asserts a `403 insufficient-scope` naming `scope`, in the problem and in
/// `WWW-Authenticate`.
#[track_caller]
fn assert_insufficient_scope(answer: &Answer, scope: &str) {
    answer.assert_problem(403, "insufficient-scope");
    assert_eq!(
        answer.header("www-authenticate"),
        Some(format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"").as_str())
    );
    let detail = answer.body["detail"].as_str().expect("detail");
    assert!(detail.contains(scope), "{detail}");
}

/// Asserts that tenant-a has no job (read with the good `token`) and
/// Cinder no backup.
async fn assert_nothing_changed(app: &TestApp, token: &str) {
    let jobs = call(app, Method::GET, "/jobs", token).await;
    assert_eq!(jobs.status, 200, "{}", jobs.text);
    assert_eq!(jobs.body["jobs"], json!([]), "no job left behind");
    assert!(app.sim.backups(PROJECT_A).is_empty(), "no backup made");
}

/// A provider publishing one RSA key `k1`, and a gateway taking its keys
/// from the provider's JWKS with `extra_flags`.
async fn jwks_gateway(extra_flags: &[&str]) -> (TestApp, IdentityProvider, SigningKey) {
    let key = SigningKey::generate(KeyKind::Rsa, "k1");
    let idp = IdentityProvider::start(&[&key]).await;
    let jwks_url = idp.jwks_url();
    let mut flags = vec!["--jwt-jwks-url", &jwks_url];
    flags.extend_from_slice(extra_flags);
    let app = TestApp::spawn_with(&flags).await;
    (app, idp, key)
}

// Key sources.

#[tokio::test]
async fn an_oidc_issuers_rs256_token_is_accepted() {
    // Arrange: the gateway knows only the issuer's URL.
    let key = SigningKey::generate(KeyKind::Rsa, "k1");
    let idp = IdentityProvider::start(&[&key]).await;
    let issuer = idp.issuer();
    let app = TestApp::spawn_with(&["--oidc-issuer", &issuer]).await;
    let token = key.sign(&claims_from(&issuer, "tenant-a"));

    // Act
    let answer = list_snapshots(&app, &token).await;

    // Assert: tenant-a's snapshots, keys found through discovery.
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.body["snapshots"]
            .as_array()
            .expect("snapshots")
            .iter()
            .any(|s| s["id"] == snapshot('a', 1)),
        "{}",
        answer.text
    );
    assert_eq!(idp.discovery_fetches(), 1);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn an_oidc_issuers_token_naming_another_issuer_is_refused() {
    // Arrange
    let key = SigningKey::generate(KeyKind::Rsa, "k1");
    let idp = IdentityProvider::start(&[&key]).await;
    let issuer = idp.issuer();
    let app = TestApp::spawn_with(&["--oidc-issuer", &issuer]).await;
    let token = key.sign(&claims_from("https://elsewhere.example", "tenant-a"));

    // Act
    let answer = list_snapshots(&app, &token).await;

    // Assert: signed by the right key, but not issued by the issuer.
    assert_invalid_token(&answer, "wrong issuer", "iss of another issuer");
}

#[tokio::test]
async fn a_rotated_key_is_accepted_without_restart_and_the_dropped_one_refused() {
    // Arrange: refreshes allowed at once, so the rotation is seen at the
    // first token naming the new key.
    let (app, idp, old) = jwks_gateway(&["--jwks-min-refresh", "0s"]).await;
    let old_token = old.sign(&claims("tenant-a"));
    assert_eq!(list_snapshots(&app, &old_token).await.status, 200);
    let new = SigningKey::generate(KeyKind::Rsa, "k2");

    // Act: the provider publishes k2 and drops k1.
    idp.publish(&new);
    idp.withdraw(&old.kid);
    let with_new = list_snapshots(&app, &new.sign(&claims("tenant-a"))).await;
    let with_old = list_snapshots(&app, &old_token).await;

    // Assert
    assert_eq!(with_new.status, 200, "{}", with_new.text);
    assert_invalid_token(&with_old, "unknown `kid`", "the dropped key");
}

#[tokio::test]
async fn a_token_without_kid_is_checked_against_every_published_key_of_its_type() {
    // Arrange: during a rotation the provider publishes two RSA keys; the
    // caller's tokens name neither.
    let (app, idp, first) = jwks_gateway(&[]).await;
    let second = SigningKey::generate(KeyKind::Rsa, "k2");
    idp.publish(&second);
    let unnamed =
        |key: &SigningKey| key.sign_with(Header::new(Algorithm::RS256), &claims("tenant-a"));

    // Act
    let by_first = list_snapshots(&app, &unnamed(&first)).await;
    let by_second = list_snapshots(&app, &unnamed(&second)).await;
    let by_stranger =
        list_snapshots(&app, &unnamed(&SigningKey::generate(KeyKind::Rsa, "k3"))).await;

    // Assert
    assert_eq!(by_first.status, 200, "{}", by_first.text);
    assert_eq!(by_second.status, 200, "{}", by_second.text);
    assert_invalid_token(&by_stranger, "bad signature", "a key never published");
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_provider_is_down() {
    // Arrange: the keys are fetched once while the provider is up.
    let (app, mut idp, key) = jwks_gateway(&["--jwks-min-refresh", "0s"]).await;
    let token = key.sign(&claims("tenant-a"));
    assert_eq!(list_snapshots(&app, &token).await.status, 200);
    let stranger = SigningKey::generate(KeyKind::Rsa, "k-unknown");
    let unknown_kid = stranger.sign(&claims("tenant-a"));

    // Act: the provider answers 503; an unknown kid makes the gateway try
    // a refresh that fails.
    idp.set_down(true);
    let fetches = idp.jwks_fetches();
    let unknown_while_503 = list_snapshots(&app, &unknown_kid).await;
    let known_while_503 = list_snapshots(&app, &token).await;
    // Then it stops answering at all.
    idp.stop().await;
    let unknown_while_gone = list_snapshots(&app, &unknown_kid).await;
    let known_while_gone = list_snapshots(&app, &token).await;

    // Assert: the refresh was tried, and the last good key set still
    // verifies; unknown keys are refused as invalid, not as unavailable.
    assert_eq!(idp.jwks_fetches(), fetches + 1, "one refresh tried");
    assert_eq!(known_while_503.status, 200, "{}", known_while_503.text);
    assert_eq!(known_while_gone.status, 200, "{}", known_while_gone.text);
    assert_invalid_token(&unknown_while_503, "unknown `kid`", "503");
    assert_invalid_token(&unknown_while_gone, "unknown `kid`", "gone");
}

#[tokio::test]
async fn a_flood_of_unknown_kids_costs_the_provider_one_fetch_per_interval() {
    // Arrange: a cold cache, one refresh an hour at most.
    let (app, idp, key) = jwks_gateway(&["--jwks-min-refresh", "1h"]).await;
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(format!("{:016x}", fastrand::u64(..)));
        let token = key.sign_with(header, &claims("tenant-a"));
        let request = app
            .client
            .get(format!("{}/snapshots", app.address))
            .bearer_auth(token);
        flood.spawn(async move { Answer::read(request.send().await.expect("sent")).await });
    }

    // Act: 50 tokens with random kids at once, then a good one.
    let answers = flood.join_all().await;
    let good = list_snapshots(&app, &key.sign(&claims("tenant-a"))).await;

    // Assert: all refused, and the provider asked once (the first fetch).
    for answer in &answers {
        assert_invalid_token(answer, "unknown `kid`", "random kid");
    }
    assert_eq!(good.status, 200, "{}", good.text);
    assert_eq!(idp.jwks_fetches(), 1, "one JWKS fetch for 51 tokens");
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_makes_every_token_fail() {
    // Arrange: the discovery document at the configured URL claims to be
    // another issuer.
    let key = SigningKey::generate(KeyKind::Rsa, "k1");
    let idp = IdentityProvider::start(&[&key]).await;
    idp.claim_issuer("https://impostor.example");
    let issuer = idp.issuer();
    let app = TestApp::spawn_with(&["--oidc-issuer", &issuer]).await;

    // Act: tokens naming either issuer.
    let mut answers = Vec::new();
    for iss in [issuer.as_str(), "https://impostor.example"] {
        answers.push(list_snapshots(&app, &key.sign(&claims_from(iss, "tenant-a"))).await);
    }

    // Assert: no key is trusted, and the impostor's JWKS is never read.
    for answer in &answers {
        answer.assert_problem(503, "upstream-unavailable");
        assert!(
            answer.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("identity provider")),
            "{}",
            answer.text
        );
    }
    assert!(idp.discovery_fetches() >= 1);
    assert_eq!(idp.jwks_fetches(), 0);
}

#[tokio::test]
async fn pem_public_keys_verify_rs256_es256_and_eddsa_tokens_by_kid() {
    // Arrange: three PEM files; each file's stem is the kid it answers to.
    let dir = tempfile::tempdir().expect("temp dir");
    let rsa = SigningKey::generate(KeyKind::Rsa, "rsa-1");
    let ec = SigningKey::generate(KeyKind::Ec, "ec-1");
    let ed = SigningKey::generate(KeyKind::Ed, "ed-1");
    let paths: Vec<String> = [&rsa, &ec, &ed]
        .iter()
        .map(|k| k.write_public_pem(dir.path(), &k.kid).display().to_string())
        .collect();
    let app = TestApp::spawn_with(&[
        "--jwt-public-key",
        &paths[0],
        "--jwt-public-key",
        &paths[1],
        "--jwt-public-key",
        &paths[2],
        "--jwt-algorithms",
        "RS256,ES256,EdDSA",
    ])
    .await;
    let mut ec_named_as_rsa = Header::new(Algorithm::ES256);
    ec_named_as_rsa.kid = Some("rsa-1".into());

    // Act
    let rs256 = list_snapshots(&app, &rsa.sign(&claims("tenant-a"))).await;
    let es256 = list_snapshots(&app, &ec.sign(&claims("tenant-a"))).await;
    let eddsa = list_snapshots(&app, &ed.sign(&claims("tenant-a"))).await;
    let mismatched =
        list_snapshots(&app, &ec.sign_with(ec_named_as_rsa, &claims("tenant-a"))).await;

    // Assert
    assert_eq!(rs256.status, 200, "{}", rs256.text);
    assert_eq!(es256.status, 200, "{}", es256.text);
    assert_eq!(eddsa.status, 200, "{}", eddsa.text);
    assert_invalid_token(&mismatched, "key type", "ES256 naming the RSA key");
}

#[tokio::test]
async fn a_jwks_of_ec_and_okp_keys_verifies_es256_and_eddsa_tokens() {
    // Arrange
    let ec = SigningKey::generate(KeyKind::Ec, "ec-1");
    let ed = SigningKey::generate(KeyKind::Ed, "ed-1");
    let idp = IdentityProvider::start(&[&ec, &ed]).await;
    let jwks_url = idp.jwks_url();
    let app = TestApp::spawn_with(&[
        "--jwt-jwks-url",
        &jwks_url,
        "--jwt-algorithms",
        "ES256,EdDSA",
    ])
    .await;
    let mut ec_named_as_ed = Header::new(Algorithm::ES256);
    ec_named_as_ed.kid = Some("ed-1".into());

    // Act
    let es256 = list_snapshots(&app, &ec.sign(&claims("tenant-a"))).await;
    let eddsa = list_snapshots(&app, &ed.sign(&claims("tenant-a"))).await;
    let mismatched = list_snapshots(&app, &ec.sign_with(ec_named_as_ed, &claims("tenant-a"))).await;

    // Assert
    assert_eq!(es256.status, 200, "{}", es256.text);
    assert_eq!(eddsa.status, 200, "{}", eddsa.text);
    assert_invalid_token(&mismatched, "unknown `kid`", "ES256 naming the Ed25519 key");
}

// Attacks: each refused, nothing changed.

/// A token of raw JSON `header` and `claims` and a raw `signature`.
fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test]
async fn forged_tampered_and_out_of_bounds_tokens_are_refused_and_change_nothing() {
    // Arrange: an RS256 gateway on the provider's JWKS, lifetimes of 2 h
    // at most, request heads of up to 256 KiB (so that a 100 KiB token
    // reaches the verifier; at the default limit the HTTP layer refuses
    // it first, see limits.rs); an attacker with keys of their own.
    let (app, _idp, key) =
        jwks_gateway(&["--jwt-max-lifetime", "2h", "--max-header-bytes", "262144"]).await;
    let good = key.sign(&claims("tenant-a"));
    let attacker = SigningKey::generate(KeyKind::Rsa, "k1");
    let signed = |patch: Value| key.sign(&with(claims("tenant-a"), patch));
    let signature = good.rsplit('.').next().expect("signature").to_owned();
    let mut attacks: Vec<(&str, String, &str)> = vec![
        (
            "alg none, unsigned",
            raw_token(
                &json!({"alg": "none", "typ": "JWT"}),
                &claims("tenant-a"),
                "",
            ),
            "token header",
        ),
        (
            "alg none, with a signature",
            raw_token(
                &json!({"alg": "none", "typ": "JWT", "kid": "k1"}),
                &claims("tenant-a"),
                &signature,
            ),
            "token header",
        ),
        (
            "HS256 keyed with the RSA public key PEM",
            {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some("k1".into());
                jsonwebtoken::encode(
                    &header,
                    &claims("tenant-a"),
                    &EncodingKey::from_secret(&key.public_pem),
                )
                .expect("sign")
            },
            "not accepted",
        ),
        (
            "RS384, not in the list",
            {
                let mut header = Header::new(Algorithm::RS384);
                header.kid = Some("k1".into());
                key.sign_with(header, &claims("tenant-a"))
            },
            "not accepted",
        ),
        (
            "unknown kid",
            {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some("k-unknown".into());
                key.sign_with(header, &claims("tenant-a"))
            },
            "unknown `kid`",
        ),
        (
            "another key under the known kid",
            attacker.sign(&claims("tenant-a")),
            "bad signature",
        ),
        (
            "the attacker's key embedded in the header (jwk, jku)",
            {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some("k1".into());
                header.jwk = Some(serde_json::from_value(attacker.jwk.clone()).expect("jwk"));
                header.jku = Some("http://127.0.0.1:9/attacker-jwks.json".into());
                attacker.sign_with(header, &claims("tenant-a"))
            },
            "bad signature",
        ),
        (
            "tampered payload",
            {
                let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
                parts[1] = URL_SAFE_NO_PAD.encode(claims("tenant-b").to_string());
                parts.join(".")
            },
            "bad signature",
        ),
        (
            "expired",
            signed(json!({"iat": now() - 7200, "exp": now() - 3600})),
            "expired",
        ),
        (
            "nbf in the future",
            signed(json!({"nbf": now() + 3600})),
            "not valid yet",
        ),
        (
            "iat in the future",
            signed(json!({"iat": now() + 3600, "exp": now() + 5400})),
            "`iat` is in the future",
        ),
        (
            "wrong iss",
            signed(json!({"iss": "https://other-issuer.example"})),
            "wrong issuer",
        ),
        (
            "wrong aud",
            signed(json!({"aud": "another-service"})),
            "wrong audience",
        ),
        (
            "no iss",
            signed(json!({"iss": null})),
            "missing claim `iss`",
        ),
        (
            "no aud",
            signed(json!({"aud": null})),
            "missing claim `aud`",
        ),
        (
            "no exp",
            signed(json!({"exp": null})),
            "missing claim `exp`",
        ),
        (
            "missing tenant",
            signed(json!({"tenant": null})),
            "`tenant` claim",
        ),
        (
            "tenant of the wrong type",
            signed(json!({"tenant": 42})),
            "`tenant` claim",
        ),
        (
            "unknown crit header",
            {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some("k1".into());
                header.crit = Some(vec!["urn:example:must-understand".into()]);
                key.sign_with(header, &claims("tenant-a"))
            },
            "`crit`",
        ),
        (
            "a 100 KiB token",
            {
                let token = signed(json!({"padding": "x".repeat(76 * 1024)}));
                assert!(token.len() >= 100 * 1024, "{} bytes", token.len());
                token
            },
            "longer than",
        ),
        (
            "malformed exp",
            signed(json!({"exp": "tomorrow"})),
            "malformed `exp`",
        ),
        (
            "over --jwt-max-lifetime",
            signed(json!({"exp": now() + 3 * 3600})),
            "lives longer",
        ),
        (
            "no iat while the lifetime is limited",
            signed(json!({"iat": null})),
            "missing claim `iat`",
        ),
    ];
    attacks.push(("not a JWT at all", "not-a-jwt".into(), "token header"));

    for (case, token, reason) in &attacks {
        // Act
        let answer = create(&app, token, &snapshot('a', 1)).await;

        // Assert: refused for its reason, the token not echoed.
        assert_invalid_token(&answer, reason, case);
        let signature = token.rsplit('.').next().unwrap_or_default();
        assert!(
            signature.len() < 8 || !answer.text.contains(signature),
            "{case}: the answer echoes the token"
        );
        assert!(
            answer.text.len() < 2048,
            "{case}: {} bytes",
            answer.text.len()
        );
    }
    assert_nothing_changed(&app, &good).await;
}

#[tokio::test]
async fn two_authorization_headers_are_400_and_change_nothing() {
    // Arrange
    let (app, _idp, key) = jwks_gateway(&[]).await;
    let good = key.sign(&claims("tenant-a"));
    let other = key.sign(&claims("tenant-b"));

    for (case, second) in [("the same token twice", &good), ("two tenants", &other)] {
        // Act
        let answer = Answer::read(
            app.client
                .post(format!(
                    "{}/snapshots/{}/backups",
                    app.address,
                    snapshot('a', 1)
                ))
                .header("authorization", format!("Bearer {good}"))
                .header("authorization", format!("Bearer {second}"))
                .json(&json!({}))
                .send()
                .await
                .expect("sent"),
        )
        .await;

        // Assert
        assert_eq!(answer.status, 400, "{case}: {}", answer.text);
        answer.assert_problem(400, "invalid-request");
        assert!(
            answer.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Authorization")),
            "{case}: {}",
            answer.text
        );
    }
    assert_nothing_changed(&app, &good).await;
    assert!(app.sim.backups(PROJECT_B).is_empty());
}

// Scopes and tenants.

#[tokio::test]
async fn a_read_only_token_reads_but_cannot_create_or_cancel() {
    // Arrange: a job made with a read-write token.
    let (app, _idp, key) = jwks_gateway(&[]).await;
    let writer = key.sign(&claims("tenant-a"));
    let job = create(&app, &writer, &snapshot('a', 1)).await;
    assert_eq!(job.status, 202, "{}", job.text);
    let job_id = job.body["id"].as_str().expect("job id").to_owned();
    let before = app.sim.backups(PROJECT_A).len();
    let reader = key.sign(&with(claims("tenant-a"), json!({"scope": "backups:read"})));

    // Act
    let mut reads = Vec::new();
    for path in [
        "/snapshots".to_owned(),
        format!("/snapshots/{}", snapshot('a', 1)),
        format!("/snapshots/{}/backups", snapshot('a', 1)),
        "/jobs".to_owned(),
        format!("/jobs/{job_id}"),
    ] {
        reads.push((call(&app, Method::GET, &path, &reader).await, path));
    }
    let created = create(&app, &reader, &snapshot('a', 2)).await;
    let cancelled = call(
        &app,
        Method::POST,
        &format!("/jobs/{job_id}/cancel"),
        &reader,
    )
    .await;

    // Assert: reads answered, writes refused with the scope they need,
    // and the job and Cinder as they were.
    for (answer, path) in &reads {
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
    }
    assert_insufficient_scope(&created, "backups:write");
    assert_insufficient_scope(&cancelled, "backups:write");
    let listed = call(&app, Method::GET, "/jobs", &writer).await;
    assert_eq!(listed.body["jobs"].as_array().expect("jobs").len(), 1);
    assert_eq!(listed.body["jobs"][0]["state"], job.body["state"]);
    assert_eq!(app.sim.backups(PROJECT_A).len(), before);
}

#[tokio::test]
async fn a_token_without_scopes_cannot_read() {
    // Arrange
    let (app, _idp, key) = jwks_gateway(&[]).await;
    let token = key.sign(&with(claims("tenant-a"), json!({"scope": null})));

    // Act
    let answer = list_snapshots(&app, &token).await;

    // Assert
    assert_insufficient_scope(&answer, "backups:read");
}

#[tokio::test]
async fn scopes_are_read_from_an_array_claim_when_configured() {
    // Arrange: scopes in `scp`, as Entra ID and Okta put them.
    let (app, _idp, key) = jwks_gateway(&["--scope-claim", "scp"]).await;
    let scp = |scopes: Value| {
        key.sign(&with(
            claims("tenant-a"),
            json!({"scope": null, "scp": scopes}),
        ))
    };
    let writer = scp(json!(["backups:read", "backups:write"]));
    let reader = scp(json!(["backups:read"]));
    let in_the_other_claim = key.sign(&claims("tenant-a"));

    // Act
    let created = create(&app, &writer, &snapshot('a', 1)).await;
    let read = list_snapshots(&app, &reader).await;
    let refused_write = create(&app, &reader, &snapshot('a', 2)).await;
    let unread = list_snapshots(&app, &in_the_other_claim).await;

    // Assert: only `scp` counts.
    assert_eq!(created.status, 202, "{}", created.text);
    assert_eq!(read.status, 200, "{}", read.text);
    assert_insufficient_scope(&refused_write, "backups:write");
    assert_insufficient_scope(&unread, "backups:read");
    assert_eq!(app.sim.backups(PROJECT_A).len(), 1);
}

#[tokio::test]
async fn the_tenant_is_read_from_a_nested_claim_when_configured() {
    // Arrange
    let (app, _idp, key) = jwks_gateway(&["--tenant-claim", "openstack.project"]).await;
    let nested = |openstack: Value| {
        key.sign(&with(
            claims("tenant-a"),
            json!({"tenant": null, "openstack": openstack}),
        ))
    };
    let good = nested(json!({"project": "tenant-a", "domain": "default"}));

    // Act
    let created = create(&app, &good, &snapshot('a', 1)).await;
    let refused = [
        ("top-level tenant only", key.sign(&claims("tenant-a"))),
        ("a number", nested(json!({"project": 42}))),
        ("not an object", nested(json!("tenant-a"))),
        ("an empty string", nested(json!({"project": ""}))),
    ];
    let mut answers = Vec::new();
    for (case, token) in &refused {
        answers.push((list_snapshots(&app, token).await, case));
    }

    // Assert: the job is tenant-a's; the others name the claim.
    assert_eq!(created.status, 202, "{}", created.text);
    assert_eq!(app.sim.backups(PROJECT_A).len(), 1);
    for (answer, case) in &answers {
        assert_invalid_token(answer, "`openstack.project` claim", case);
    }
}

#[tokio::test]
async fn another_tenants_jobs_and_snapshots_are_404_on_every_endpoint() {
    // Arrange: a job of tenant-a, and a caller of tenant-b.
    let (app, _idp, key) = jwks_gateway(&[]).await;
    let owner = key.sign(&claims("tenant-a"));
    let job = create(&app, &owner, &snapshot('a', 1)).await;
    assert_eq!(job.status, 202, "{}", job.text);
    let job_id = job.body["id"].as_str().expect("job id").to_owned();
    let intruder = key.sign(&claims("tenant-b"));
    let backups_before = app.sim.backups(PROJECT_A).len();

    // Act
    let get_job = call(&app, Method::GET, &format!("/jobs/{job_id}"), &intruder).await;
    let wait_job = call(
        &app,
        Method::GET,
        &format!("/jobs/{job_id}?wait=1"),
        &intruder,
    )
    .await;
    let cancel = call(
        &app,
        Method::POST,
        &format!("/jobs/{job_id}/cancel"),
        &intruder,
    )
    .await;
    let list = call(&app, Method::GET, "/jobs", &intruder).await;
    let filtered = call(
        &app,
        Method::GET,
        &format!("/jobs?snapshot_id={}", snapshot('a', 1)),
        &intruder,
    )
    .await;
    let get_snapshot = call(
        &app,
        Method::GET,
        &format!("/snapshots/{}", snapshot('a', 1)),
        &intruder,
    )
    .await;
    let snapshot_backups = call(
        &app,
        Method::GET,
        &format!("/snapshots/{}/backups", snapshot('a', 1)),
        &intruder,
    )
    .await;
    let create_on = create(&app, &intruder, &snapshot('a', 2)).await;

    // Assert: not found, never forbidden (which would say it exists).
    get_job.assert_problem(404, "job-not-found");
    wait_job.assert_problem(404, "job-not-found");
    cancel.assert_problem(404, "job-not-found");
    get_snapshot.assert_problem(404, "snapshot-not-found");
    snapshot_backups.assert_problem(404, "snapshot-not-found");
    create_on.assert_problem(404, "snapshot-not-found");
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["jobs"], json!([]));
    assert_eq!(filtered.status, 200, "{}", filtered.text);
    assert_eq!(filtered.body["jobs"], json!([]));
    // tenant-a's job and backups are as they were; tenant-b made none.
    let mine = call(&app, Method::GET, &format!("/jobs/{job_id}"), &owner).await;
    assert_eq!(mine.body["state"], job.body["state"], "{}", mine.text);
    assert_eq!(app.sim.backups(PROJECT_A).len(), backups_before);
    assert!(app.sim.backups(PROJECT_B).is_empty());
}

// Start-up checks of iss and aud.

#[tokio::test]
async fn without_issuer_and_audience_the_gateway_does_not_start_and_names_the_flags() {
    // Arrange: a JWKS key source (not fetched at start).
    crate::helpers::logs();
    let cloud = TestCloud::start(TestApp::sim_config(Duration::from_secs(3600))).await;
    let jwks = ["--jwt-jwks-url", "http://127.0.0.1:9/jwks.json"];
    let cases: [(&str, &[&str]); 4] = [
        ("neither", &[]),
        ("issuer only", &["--jwt-issuer", JWT_ISSUER]),
        ("audience only", &["--jwt-audience", JWT_AUDIENCE]),
        (
            "OIDC issuer without audience",
            &["--oidc-issuer", "http://127.0.0.1:9"],
        ),
    ];

    for (case, given) in cases {
        // Act
        let mut flags = cloud.flags();
        if !given.contains(&"--oidc-issuer") {
            flags.extend_from_slice(&jwks);
        }
        flags.extend_from_slice(given);
        let built = Application::build(parse_config(&flags).expect("flags parse")).await;

        // Assert
        let error = built.err().map(|e| format!("{e:#}"));
        let error = error.unwrap_or_else(|| panic!("{case}: the gateway started"));
        for flag in [
            "--jwt-issuer",
            "--jwt-audience",
            "--jwt-allow-any-issuer-audience",
        ] {
            assert!(
                error.contains(flag),
                "{case}: `{error}` does not name {flag}"
            );
        }
    }
    // The explicit waiver starts, with a warning.
    let mut flags = cloud.flags();
    flags.extend_from_slice(&jwks);
    flags.push("--jwt-allow-any-issuer-audience");
    let waived = Application::build(parse_config(&flags).expect("flags parse")).await;
    assert!(waived.is_ok(), "the waiver starts the gateway");
    assert!(
        crate::helpers::logs().contains("WARN")
            && crate::helpers::logs().contains("tokens of any issuer and audience"),
        "the waiver is logged as a warning"
    );
}

#[tokio::test]
async fn unsafe_key_and_browser_settings_are_configuration_errors_naming_the_flag() {
    // Arrange
    let cloud = TestCloud::start(TestApp::sim_config(Duration::from_secs(3600))).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let private_pem = dir.path().join("private.pem");
    // The label alone says it: a private key is refused before it is read.
    std::fs::write(
        &private_pem,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let private_pem = private_pem.display().to_string();
    let iss_aud = ["--jwt-issuer", JWT_ISSUER, "--jwt-audience", JWT_AUDIENCE];
    let cases: [(&[&str], &str); 6] = [
        (
            &["--jwt-jwks-url", "http://idp.example/jwks.json"],
            "--jwt-jwks-url",
        ),
        (&["--oidc-issuer", "http://idp.example"], "--oidc-issuer"),
        (&["--jwt-public-key", &private_pem], "--jwt-public-key"),
        (
            &["--jwt-secret", "s", "--cors-origin", "*"],
            "--cors-origin",
        ),
        (
            &[
                "--jwt-secret",
                "s",
                "--cors-origin",
                "https://portal.example/app",
            ],
            "--cors-origin",
        ),
        (
            &["--jwt-secret", "s", "--write-scope", "backups write"],
            "--write-scope",
        ),
    ];

    for (given, flag) in cases {
        // Act
        let mut flags = cloud.flags();
        flags.extend_from_slice(given);
        flags.extend_from_slice(&iss_aud);
        let built = Application::build(parse_config(&flags).expect("flags parse")).await;

        // Assert
        let error = built.err().map(|e| format!("{e:#}"));
        let error = error.unwrap_or_else(|| panic!("{given:?}: the gateway started"));
        assert!(
            error.contains(flag),
            "{given:?}: `{error}` does not name {flag}"
        );
    }
    // An OIDC issuer with another --jwt-issuer contradicts itself.
    let mut flags = cloud.flags();
    flags.extend_from_slice(&[
        "--oidc-issuer",
        "https://idp.example",
        "--jwt-issuer",
        "https://other.example",
        "--jwt-audience",
        JWT_AUDIENCE,
    ]);
    let built = Application::build(parse_config(&flags).expect("flags parse")).await;
    assert!(
        built
            .err()
            .is_some_and(|e| format!("{e:#}").contains("--oidc-issuer"))
    );
}

#[tokio::test]
async fn with_the_waiver_tokens_of_any_issuer_and_audience_are_accepted() {
    // Arrange
    let (app, _idp, key) = jwks_gateway(&["--jwt-allow-any-issuer-audience"]).await;
    let token = key.sign(&with(
        claims("tenant-a"),
        json!({"iss": "https://someone.example", "aud": "another-service"}),
    ));

    // Act
    let answer = list_snapshots(&app, &token).await;

    // Assert
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test]
async fn a_hanging_refresh_does_not_hold_up_callers_whose_key_is_cached() {
    // Arrange: k1 cached; the provider then hangs, and a token naming a
    // key it is about to publish starts a refresh that waits on it.
    let (app, idp, key) = jwks_gateway(&["--jwks-min-refresh", "0s"]).await;
    let cached_token = key.sign(&claims("tenant-a"));
    assert_eq!(list_snapshots(&app, &cached_token).await.status, 200);
    let new = SigningKey::generate(KeyKind::Rsa, "k2");
    idp.hold();
    let fetches = idp.jwks_fetches();
    let refreshing = app
        .client
        .get(format!("{}/snapshots", app.address))
        .bearer_auth(new.sign(&claims("tenant-a")))
        .send();
    let refreshing =
        tokio::spawn(async move { Answer::read(refreshing.await.expect("sent")).await });
    idp.jwks_fetched(fetches + 1).await;

    // Act: a caller whose key is cached, while the refresh hangs; then the
    // provider answers the refresh with k2.
    let cached = list_snapshots(&app, &cached_token).await;
    idp.publish(&new);
    idp.release();
    let refreshed = refreshing.await.expect("the request ends");

    // Assert: the cached key answered at once, and the refresh was still
    // waiting for the provider (not given up on after the fetch time limit
    // while everyone waited).
    assert_eq!(cached.status, 200, "{}", cached.text);
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
}

#[tokio::test]
async fn an_exp_that_is_a_number_but_no_timestamp_is_called_malformed() {
    // Arrange
    let (app, _idp, key) = jwks_gateway(&[]).await;
    let good = key.sign(&claims("tenant-a"));

    for exp in [json!(-5), json!(1e30)] {
        // Act
        let token = key.sign(&with(claims("tenant-a"), json!({ "exp": exp })));
        let answer = create(&app, &token, &snapshot('a', 1)).await;

        // Assert
        assert_invalid_token(&answer, "malformed `exp`", &format!("exp {exp}"));
    }
    assert_nothing_changed(&app, &good).await;
}

/// A hostile or broken key server on 127.0.0.1: `/huge` answers a 2 MiB
/// document, `/redirect` sends the caller to `target`.
async fn hostile_key_server(target: String) -> String {
    let app = axum::Router::new()
        .route(
            "/huge",
            axum::routing::get(|| async {
                format!(
                    "{{\"keys\": [], \"padding\": \"{}\"}}",
                    "x".repeat(2 * 1024 * 1024)
                )
            }),
        )
        .route(
            "/redirect",
            axum::routing::get(move || {
                let target = target.clone();
                async move { axum::response::Redirect::temporary(&target) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

#[tokio::test]
async fn an_oversized_or_redirecting_key_server_yields_no_keys() {
    // Arrange: a real key set behind a redirect, and a 2 MiB document.
    let key = SigningKey::generate(KeyKind::Rsa, "k1");
    let idp = IdentityProvider::start(&[&key]).await;
    let server = hostile_key_server(idp.jwks_url()).await;
    let token = key.sign(&claims("tenant-a"));

    for path in ["/huge", "/redirect"] {
        let url = format!("{server}{path}");
        let app = TestApp::spawn_with(&["--jwt-jwks-url", &url]).await;

        // Act
        let answer = list_snapshots(&app, &token).await;

        // Assert: no key was had (the redirect is not followed, the large
        // document not read whole), so the caller is told to retry later.
        answer.assert_problem(503, "upstream-unavailable");
    }
    assert_eq!(idp.jwks_fetches(), 0, "the redirect was not followed");
}

#[tokio::test]
async fn the_shared_secret_can_come_from_a_file_as_container_secrets_do() {
    // Arrange: the tests' secret in a file, with the newline an editor or
    // `echo` leaves.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("jwt-secret");
    std::fs::write(&path, format!("{}\n", crate::helpers::JWT_SECRET)).expect("written");
    let path = path.to_str().expect("utf-8").to_owned();

    // Act
    let app = TestApp::spawn_with(&["--jwt-secret-file", &path]).await;
    let listed = app.get("tenant-a", "/jobs").await;
    let both = crate::helpers::parse_config(&["--jwt-secret", "x", "--jwt-secret-file", &path]);
    let missing = crate::helpers::parse_config(&["--jwt-secret-file", "/nonexistent/secret"]);

    // Assert: tokens signed with the file's secret are accepted; the two
    // flags together, or a file that cannot be read, are refused by name.
    assert_eq!(listed.status, 200, "{}", listed.text);
    let both = both.expect_err("refused").to_string();
    assert!(both.contains("--jwt-secret-file"), "{both}");
    let missing = missing.expect_err("refused").to_string();
    assert!(
        missing.contains("--jwt-secret-file") && missing.contains("/nonexistent/secret"),
        "{missing}"
    );
}
