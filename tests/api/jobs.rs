//! Listing jobs and snapshots: newest first, filters, page tokens.

use std::{collections::HashSet, time::Duration};

use openstack_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{PROJECT_A, TestApp, snapshot, volume};

/// Adds `n` volumes with one available snapshot each to tenant-a; returns the snapshot ids.
fn add_snapshots(app: &TestApp, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let volume_id = format!("10000000-0000-4000-8000-{i:012}");
            let snapshot_id = format!("20000000-0000-4000-8000-{i:012}");
            app.add_snapshot(PROJECT_A, &volume_id, &snapshot_id);
            snapshot_id
        })
        .collect()
}

fn ids(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .expect("list")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn jobs_are_listed_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for snapshot_id in add_snapshots(&app, 5) {
        created.push(
            app.create_ok("tenant-a", &snapshot_id).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    created.reverse();

    let mut seen = Vec::new();
    let mut path = "/jobs?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let answer = app.get("tenant-a", &path).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        pages += 1;
        let page = ids(&answer.body, "jobs");
        assert!(page.len() <= 2);
        seen.extend(page);
        match answer.body["next_page_token"].as_str() {
            Some(token) => path = format!("/jobs?limit=2&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "every job once, newest first");
}

#[tokio::test]
async fn jobs_filter_by_state_snapshot_and_volume() {
    let app = TestApp::spawn().await;
    let first = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    app.finish_backups();
    app.cycle().await;
    let second = app.create_ok("tenant-a", &snapshot('a', 2)).await;

    let succeeded = app.get("tenant-a", "/jobs?state=succeeded").await;
    assert_eq!(
        ids(&succeeded.body, "jobs"),
        vec![first["id"].as_str().expect("id")]
    );
    let running = app.get("tenant-a", "/jobs?state=running").await;
    assert_eq!(
        ids(&running.body, "jobs"),
        vec![second["id"].as_str().expect("id")]
    );
    let by_snapshot = app
        .get(
            "tenant-a",
            &format!("/jobs?snapshot_id={}", snapshot('a', 2)),
        )
        .await;
    assert_eq!(
        ids(&by_snapshot.body, "jobs"),
        vec![second["id"].as_str().expect("id")]
    );
    let by_volume = app
        .get("tenant-a", &format!("/jobs?volume_id={}", volume('a', 1)))
        .await;
    assert_eq!(
        ids(&by_volume.body, "jobs"),
        vec![first["id"].as_str().expect("id")]
    );
    let none = app.get("tenant-a", "/jobs?state=cancelled").await;
    assert!(ids(&none.body, "jobs").is_empty());
    assert!(none.body["next_page_token"].is_null());
}

#[tokio::test]
async fn snapshots_are_paged_as_cinder_pages_them() {
    let app = TestApp::spawn().await;
    let mut expected: HashSet<String> = add_snapshots(&app, 4).into_iter().collect();
    expected.extend((1..=3).map(|n| snapshot('a', n)));

    let mut seen = Vec::new();
    let mut path = "/snapshots?limit=3".to_owned();
    loop {
        let answer = app.get("tenant-a", &path).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let page = ids(&answer.body, "snapshots");
        assert!(page.len() <= 3);
        seen.extend(page);
        match answer.body["next_page_token"].as_str() {
            Some(token) => path = format!("/snapshots?limit=3&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), expected);
}

#[tokio::test]
async fn the_last_full_page_of_snapshots_has_no_next_page_token() {
    // Arrange: six snapshots, two pages of three.
    let app = TestApp::spawn().await;
    add_snapshots(&app, 3);

    // Act
    let first = app.get("tenant-a", "/snapshots?limit=3").await;
    let token = first.body["next_page_token"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let last = app
        .get(
            "tenant-a",
            &format!("/snapshots?limit=3&page_token={token}"),
        )
        .await;
    let all = app.get("tenant-a", "/snapshots?limit=6").await;

    // Assert
    assert_eq!(ids(&first.body, "snapshots").len(), 3);
    assert_eq!(ids(&last.body, "snapshots").len(), 3, "{}", last.text);
    assert!(last.body["next_page_token"].is_null(), "{}", last.text);
    assert_eq!(ids(&all.body, "snapshots").len(), 6);
    assert!(all.body["next_page_token"].is_null(), "{}", all.text);
}

#[tokio::test]
async fn a_page_cut_by_cinders_largest_page_ends_with_no_token_too() {
    // Arrange: a Cinder that answers at most three snapshots a page, and
    // six snapshots.
    let app = TestApp::spawn_on(
        SimConfig {
            max_page_limit: 3,
            ..TestApp::sim_config(Duration::from_secs(3600))
        },
        &[],
    )
    .await;
    add_snapshots(&app, 3);

    // Act: pages of five, which Cinder cuts to three.
    let first = app.get("tenant-a", "/snapshots?limit=5").await;
    let token = first.body["next_page_token"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let last = app
        .get(
            "tenant-a",
            &format!("/snapshots?limit=5&page_token={token}"),
        )
        .await;

    // Assert
    assert_eq!(ids(&first.body, "snapshots").len(), 3, "{}", first.text);
    assert_eq!(ids(&last.body, "snapshots").len(), 3, "{}", last.text);
    assert!(last.body["next_page_token"].is_null(), "{}", last.text);
}

#[tokio::test]
async fn a_page_token_of_one_listing_is_refused_by_another() {
    let app = TestApp::spawn().await;
    let snapshots = app.get("tenant-a", "/snapshots?limit=1").await;
    let token = snapshots.body["next_page_token"]
        .as_str()
        .expect("more snapshots");
    app.get("tenant-a", &format!("/jobs?page_token={token}"))
        .await
        .assert_problem(400, "invalid-request");
}

#[tokio::test]
async fn a_snapshot_is_shown_as_cinder_shows_it() {
    let app = TestApp::spawn().await;
    let answer = app
        .get("tenant-b", &format!("/snapshots/{}", snapshot('b', 1)))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["id"], snapshot('b', 1));
    assert_eq!(answer.body["volume_id"], volume('b', 1));
    assert_eq!(answer.body["status"], "available");
    assert_eq!(answer.body["name"], "mail-store-snap-1");
}
