//! Limits a public service needs: per-tenant rate limits, CORS for
//! configured origins only, slow or idle connections closed, a cap on
//! connections, bounded request heads, and safe headers on every answer.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::TestApp;

/// `host:port` of the gateway.
fn host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or 10 s pass): the bytes.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    read.ok().map(|_| received)
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_with_retry_after_and_others_go_on() {
    let app = TestApp::spawn_with(&["--rate-limit", "1", "--rate-burst", "2"]).await;

    let answers = [
        app.get("tenant-a", "/jobs").await,
        app.get("tenant-a", "/jobs").await,
        app.get("tenant-a", "/jobs").await,
    ];
    let other = app.get("tenant-b", "/jobs").await;

    assert_eq!(answers[0].status, StatusCode::OK);
    assert_eq!(answers[1].status, StatusCode::OK);
    answers[2].assert_problem(429, "rate-limited");
    let retry: u64 = answers[2]
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry >= 1, "{retry}");
    assert_eq!(other.status, StatusCode::OK, "tenant-b has its own bucket");
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let app = TestApp::spawn_with(&["--cors-origin", "https://portal.example"]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                Method::OPTIONS,
                format!("{}/snapshots/x/backups", app.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };

    let allowed = preflight("https://portal.example").await.expect("answered");
    let refused = preflight("https://evil.example").await.expect("answered");
    let read = app
        .request(Method::GET, "/jobs", Some("tenant-a"))
        .header("Origin", "https://portal.example")
        .send()
        .await
        .expect("answered");

    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://portal.example"
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .expect("text")
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization") && allowed_headers.contains("idempotency-key")
    );
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let exposed = read.headers()["access-control-expose-headers"]
        .to_str()
        .expect("text")
        .to_ascii_lowercase();
    for name in ["location", "retry-after", "x-request-id"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

#[tokio::test]
async fn without_cors_origins_no_cors_headers_are_sent_and_answers_are_not_sniffed_or_cached() {
    let app = TestApp::spawn().await;

    let answer = app
        .request(Method::GET, "/jobs", Some("tenant-a"))
        .header("Origin", "https://portal.example")
        .send()
        .await
        .expect("answered");
    let problem = app
        .request(Method::GET, "/jobs/not-a-job", Some("tenant-a"))
        .send()
        .await
        .expect("answered");

    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    for headers in [answer.headers(), problem.headers()] {
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn a_callers_request_id_is_kept_only_when_short_and_safe() {
    let app = TestApp::spawn().await;
    let with_id = |id: String| {
        app.request(Method::GET, "/jobs/not-a-job", Some("tenant-a"))
            .header("X-Request-Id", id)
            .send()
    };

    let kept = with_id("portal-42.a_b".into()).await.expect("answered");
    let long = with_id("x".repeat(200)).await.expect("answered");
    let unsafe_id = with_id("<script>alert(1)</script>".into())
        .await
        .expect("answered");

    assert_eq!(kept.headers()["x-request-id"], "portal-42.a_b");
    for answer in [long, unsafe_id] {
        let id = answer.headers()["x-request-id"]
            .to_str()
            .expect("text")
            .to_owned();
        assert!(id.starts_with("req-") && id.len() == 40, "{id}");
        let body: serde_json::Value = answer.json().await.expect("problem");
        assert_eq!(body["instance"], id.as_str());
    }
}

#[tokio::test]
async fn a_client_that_sends_headers_slowly_is_disconnected() {
    let app = TestApp::spawn_with(&["--header-read-timeout", "1s"]).await;
    let mut stream = tokio::net::TcpStream::connect(host(&app))
        .await
        .expect("connects");

    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("writes");
    let received = read_until_closed(&mut stream).await;

    let received = received.expect("the gateway closed the connection");
    let text = String::from_utf8_lossy(&received);
    assert!(!text.contains("200 OK"), "{text}");
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once() {
    let app =
        TestApp::spawn_with(&["--max-connections", "1", "--header-read-timeout", "30s"]).await;
    let _holder = tokio::net::TcpStream::connect(host(&app))
        .await
        .expect("connects");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut second = tokio::net::TcpStream::connect(host(&app))
        .await
        .expect("connects");
    let _ = second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let received = read_until_closed(&mut second).await;

    let received = received.expect("closed at once, not after the header timeout");
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_refused_before_the_token_is_read() {
    let app = TestApp::spawn().await;
    let huge = format!("Bearer {}", "a".repeat(100 * 1024));

    let far_too_large = format!("Bearer {}", "a".repeat(300 * 1024));

    let answer = app
        .client
        .get(format!("{}/jobs", app.address))
        .header("Authorization", huge)
        .send()
        .await
        .expect("answered");
    let answer = crate::helpers::Answer::read(answer).await;
    let beyond = app
        .client
        .get(format!("{}/jobs", app.address))
        .header("Authorization", far_too_large)
        .send()
        .await;

    // Over --max-header-bytes (32 KiB): the API's problem, naming it.
    answer.assert_problem(431, "request-header-fields-too-large");
    assert!(answer.text.contains("32768 bytes"), "{}", answer.text);
    // Over four times it, the HTTP layer stops reading: a bare 431 or a
    // closed connection (see README).
    if let Ok(beyond) = beyond {
        assert_eq!(beyond.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
}

#[tokio::test]
async fn a_request_target_over_eight_kib_is_a_414_problem() {
    let app = TestApp::spawn().await;
    let long = format!("/jobs?snapshot_id={}", "a".repeat(9 * 1024));
    let fits = format!("/jobs?snapshot_id={}", "a".repeat(7 * 1024));

    let refused = app.get("tenant-a", &long).await;
    let answered = app.get("tenant-a", &fits).await;

    refused.assert_problem(414, "uri-too-long");
    assert!(refused.text.contains("8192 bytes"), "{}", refused.text);
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.text);
}

/// What the HTTP layer answers itself, before the API sees a request (the
/// README lists these as the exceptions to problem+json): a head it cannot
/// parse is a bare 400, a head of over 100 fields a bare 431, and the
/// connection closes. A body whose chunked
/// framing breaks after the head was read is the API's 400 problem.
#[tokio::test]
async fn framing_errors_are_answered_as_the_readme_says() {
    let app = TestApp::spawn().await;
    let token = app.token("tenant-a");

    let unparseable = raw_exchange(
        &app,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n".to_owned(),
    )
    .await;
    let broken_chunks = raw_exchange(
        &app,
        format!(
            "POST /snapshots/{}/backups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n",
            crate::helpers::snapshot('a', 1)
        ),
    )
    .await;
    let many_fields: String = (0..150).map(|i| format!("X-F{i}: v\r\n")).collect();
    let too_many_fields = raw_exchange(
        &app,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_fields}\r\n"),
    )
    .await;

    assert!(unparseable.starts_with("HTTP/1.1 400"), "{unparseable}");
    // Over 100 header fields, however short: the parser's own 431.
    assert!(
        too_many_fields.starts_with("HTTP/1.1 431"),
        "{too_many_fields}"
    );
    assert!(broken_chunks.starts_with("HTTP/1.1 400"), "{broken_chunks}");
    assert!(
        broken_chunks.contains("application/problem+json"),
        "{broken_chunks}"
    );
    assert_eq!(app.sim.calls(openstack_sim::Op::BackupCreate), 0);
}

/// Writes `request` on a new connection and reads until the gateway closes
/// it (or 5 s pass).
async fn raw_exchange(app: &TestApp, request: String) -> String {
    let mut stream = tokio::net::TcpStream::connect(host(app))
        .await
        .expect("connects");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let app = TestApp::spawn_with(&["--header-read-timeout", "1s"]).await;
    let mut stream = tokio::net::TcpStream::connect(host(&app))
        .await
        .expect("connects");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).await.expect("an answer");
    assert_eq!(&first, b"HTTP/1.1 200");

    // Act: the client keeps the connection and sends nothing more.
    let rest = read_until_closed(&mut stream).await;

    assert!(rest.is_some(), "the gateway closed the idle connection");
}
