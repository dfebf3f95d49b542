//! `GET /metrics`: what an operator's Prometheus reads.

use crate::helpers::{TestApp, snapshot};

#[tokio::test]
async fn metrics_count_requests_by_route_upstream_calls_jobs_and_tokens() {
    // Arrange: a job made, followed to its end, and read.
    let app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let id = job["id"].as_str().expect("id").to_owned();
    app.finish_backups();
    app.cycle().await;
    app.job("tenant-a", &id).await;

    // Act
    let scrape = app.get("tenant-a", "/metrics").await;

    // Assert
    assert_eq!(scrape.status, 200);
    assert!(
        scrape
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        scrape.headers
    );
    let text = &scrape.text;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(
        value(
            r#"backup_gateway_http_requests_total{route="/jobs/{job_id}",method="GET",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"backup_gateway_http_requests_total{route="/snapshots/{snapshot_id}/backups",method="POST",status="202"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"backup_gateway_upstream_requests_total{service="cinder",operation="create_backup",status_class="2xx"}"#
        ),
        1.0
    );
    assert!(
        value(
            r#"backup_gateway_upstream_requests_total{service="keystone",operation="token_issue",status_class="2xx"}"#
        ) >= 1.0
    );
    assert_eq!(
        value(
            r#"backup_gateway_upstream_request_duration_seconds_count{service="cinder",operation="create_backup",status_class="2xx"}"#
        ),
        1.0
    );
    assert_eq!(value(r#"backup_gateway_jobs{state="succeeded"}"#), 1.0);
    assert_eq!(value(r#"backup_gateway_jobs{state="running"}"#), 0.0);
    assert_eq!(
        value(r#"backup_gateway_job_duration_seconds_count{state="succeeded"}"#),
        1.0
    );
    assert!(
        value(r#"backup_gateway_token_cache_events_total{tenant="tenant-a",outcome="miss"}"#)
            >= 1.0
    );
    assert!(
        value(r#"backup_gateway_token_cache_events_total{tenant="tenant-a",outcome="hit"}"#) >= 1.0
    );
    assert!(
        value(r#"backup_gateway_tenant_last_listing_timestamp_seconds{tenant="tenant-a"}"#) > 1.7e9
    );
    assert!(
        value(r#"backup_gateway_worker_pass_duration_seconds_count{tenant="tenant-a"}"#) >= 1.0
    );
    assert_eq!(value(r#"backup_gateway_long_poll_waiters"#), 0.0);
    assert_eq!(
        value(&format!(
            r#"backup_gateway_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    for family in [
        "backup_gateway_worker_cycle_duration_seconds",
        "backup_gateway_worker_lag_seconds",
        "backup_gateway_http_request_duration_seconds",
        "backup_gateway_upstream_request_duration_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
    // Route templates only: no raw id makes a series of its own.
    assert!(!text.contains(&id), "{text}");
    assert!(!text.contains(&snapshot('a', 1)), "{text}");
}

#[tokio::test]
async fn a_token_renewed_after_cinder_refused_it_counts_as_a_refresh() {
    // Arrange: a token in the cache, then revoked (as when Keystone's keys
    // change).
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/snapshots").await;
    app.sim.expire_tokens();

    // Act: Cinder refuses the cached token; the gateway gets a new one.
    let listed = app.get("tenant-a", "/snapshots").await;

    // Assert
    assert_eq!(listed.status, 200, "{}", listed.text);
    let scrape = app.get("tenant-a", "/metrics").await;
    let count = |outcome: &str| -> f64 {
        let series = format!(
            r#"backup_gateway_token_cache_events_total{{tenant="tenant-a",outcome="{outcome}"}}"#
        );
        scrape
            .text
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str())?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(count("miss"), 1.0, "only the first token was a miss");
    assert_eq!(count("refresh"), 1.0, "{}", scrape.text);
}
