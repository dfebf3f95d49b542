//! The simulator holding thousands of backups: the worker's listing of
//! `creating` backups, shows, pages, counts and quota usage stay right.
//! Only correctness is checked here; the benchmarks measure speed.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use openstack_sim::{SnapshotSeed, VolumeSeed};

use crate::support::Harness;

/// Backups made, then finished, before the ones under test.
const MANY: usize = 2_000;

/// A UUID-like id (Cinder's schema wants one) for snapshot `n`.
fn snapshot_id(n: usize) -> String {
    format!("{n:08x}-5a95-4a95-8a95-{n:012x}")
}

const VOLUME: &str = "0b0b0b0b-7e17-4e17-8e17-0b0b0b0b0b0b";

/// Creates a backup of snapshot `n` of the big volume; returns its id.
async fn create(client: &reqwest::Client, url: &str, token: &str, n: usize) -> String {
    let body = json!({"backup": {"volume_id": VOLUME, "snapshot_id": snapshot_id(n)}});
    let answer = client
        .post(url)
        .header("x-auth-token", token)
        .json(&body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let body: Value = answer.json().await.expect("json");
    body["backup"]["id"].as_str().expect("id").to_owned()
}

fn ids(body: &Value) -> Vec<String> {
    body["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .map(|b| b["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn listings_and_shows_stay_right_among_thousands_of_backups() {
    // Arrange: MANY done backups of one project, then three left creating,
    // and one creating in another project.
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    h.sim().add_volume(
        &project,
        VolumeSeed {
            id: VOLUME.to_owned(),
            name: "big".to_owned(),
            size: 1,
            status: "available".to_owned(),
        },
    );
    for n in 0..MANY + 3 {
        h.sim().add_snapshot(
            &project,
            SnapshotSeed {
                id: snapshot_id(n),
                name: format!("snap-{n}"),
                description: None,
                volume_id: VOLUME.to_owned(),
                status: "available".to_owned(),
                metadata: Default::default(),
            },
        );
    }
    // The harness's client opens a connection per call; reuse them here.
    let client = reqwest::Client::new();
    let url = format!("{}/backups", h.running.endpoint(&project));
    let mut done = BTreeSet::new();
    for chunk in (0..MANY).collect::<Vec<_>>().chunks(50) {
        let mut creates = JoinSet::new();
        for &n in chunk {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            creates.spawn(async move { create(&client, &url, &token, n).await });
        }
        while let Some(id) = creates.join_next().await {
            done.insert(id.expect("create task"));
        }
    }
    h.sim().finish_pending();
    let mut running = Vec::new();
    for n in MANY..MANY + 3 {
        running.push(create(&client, &url, &token, n).await);
    }
    let token_b = h.token(1).await;
    let other = h.create_backup(1, 0, &token_b, None, json!({})).await;
    assert_eq!(other.status, StatusCode::ACCEPTED);

    // Act
    let creating = h
        .cinder(
            Method::GET,
            &project,
            "/backups/detail?status=creating",
            &token,
            None,
            None,
        )
        .await;
    let counted = h
        .cinder(
            Method::GET,
            &project,
            "/backups?status=creating&with_count=true",
            &token,
            Some("3.45"),
            None,
        )
        .await;
    let oldest = done.first().expect("a done backup").clone();
    let shown = h
        .cinder(
            Method::GET,
            &project,
            &format!("/backups/{oldest}"),
            &token,
            None,
            None,
        )
        .await;
    let mut pages = Vec::new();
    let mut next = Some(format!("{url}?status=available"));
    while let Some(page_url) = next {
        let page = h
            .send(
                Method::GET,
                &page_url,
                &[("x-auth-token", token.as_str())],
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        next = page.body["backups_links"][0]["href"]
            .as_str()
            .map(str::to_owned);
        pages.push(ids(&page.body));
    }
    let count = h.control(Method::GET, "/backups/count", None).await;
    let quota = h
        .cinder(
            Method::GET,
            &project,
            &format!("/os-quota-sets/{project}?usage=True"),
            &token,
            None,
            None,
        )
        .await;

    // Assert: the three running ones, newest first, and nothing else.
    running.reverse();
    assert_eq!(creating.status, StatusCode::OK);
    assert_eq!(ids(&creating.body), running);
    assert!(
        creating.body["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .all(|b| b["status"] == "creating")
    );
    assert_eq!(counted.body["count"], 3);
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body["backup"]["id"], oldest.as_str());
    assert_eq!(shown.body["backup"]["status"], "available");
    // Pages of the 1000-item cap: two full ones, then an empty last.
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1000, 1000, 0]);
    let listed: BTreeSet<String> = pages.into_iter().flatten().collect();
    assert_eq!(listed, done);
    assert_eq!(
        count.body,
        json!({"creating": 4, "available": MANY, "error": 0, "deleting": 0, "restoring": 0, "total": MANY + 4})
    );
    assert_eq!(
        quota.body["quota_set"]["backups"]["in_use"],
        json!(MANY + 3)
    );
}
