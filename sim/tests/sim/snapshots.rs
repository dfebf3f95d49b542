//! Snapshots: list, detail, show, filters, pages, and the admin's reset
//! (exchanges 06-11, 14, 27, 32, 77).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{ADMIN_PROJECT, Harness, keys, sorted};

const SUMMARY_KEYS: &[&str] = &[
    "id",
    "created_at",
    "updated_at",
    "name",
    "description",
    "volume_id",
    "status",
    "size",
    "metadata",
];

#[tokio::test]
async fn list_is_summary_and_detail_adds_extended_attributes() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);

    // Exchange 06.
    let list = h
        .cinder(Method::GET, &project, "/snapshots", &token, None, None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let snapshots = list.body["snapshots"].as_array().expect("snapshots");
    assert_eq!(snapshots.len(), h.seed.tenants[0].snapshots.len());
    assert_eq!(keys(&snapshots[0]), sorted(SUMMARY_KEYS));
    // Newest first, in the seed's order.
    assert_eq!(snapshots[0]["id"], h.snapshot(0, 0));
    assert!(list.body.get("snapshots_links").is_none());

    // Exchange 07.
    let detail = h
        .cinder(
            Method::GET,
            &project,
            "/snapshots/detail",
            &token,
            None,
            None,
        )
        .await;
    let first = &detail.body["snapshots"][0];
    let mut expected = SUMMARY_KEYS.to_vec();
    expected.extend([
        "os-extended-snapshot-attributes:project_id",
        "os-extended-snapshot-attributes:progress",
    ]);
    assert_eq!(keys(first), sorted(&expected));
    assert_eq!(first["os-extended-snapshot-attributes:project_id"], project);
    assert_eq!(first["os-extended-snapshot-attributes:progress"], "100%");
    assert!(first["size"].is_u64());
    // Cinder's naive timestamps: six zero digits, no zone.
    let created = first["created_at"].as_str().expect("created_at");
    assert!(
        created.ends_with(".000000") && !created.ends_with('Z'),
        "{created}"
    );
}

#[tokio::test]
async fn show_at_3_71_adds_later_keys() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let path = format!("/snapshots/{}", h.snapshot(0, 0));

    // Exchange 08.
    let at_30 = h
        .cinder(Method::GET, &h.project(0), &path, &token, None, None)
        .await;
    assert_eq!(at_30.status, StatusCode::OK);
    assert!(at_30.body["snapshot"].get("user_id").is_none());

    // Exchange 09.
    let at_371 = h
        .cinder(
            Method::GET,
            &h.project(0),
            &path,
            &token,
            Some("3.71"),
            None,
        )
        .await;
    let snapshot = &at_371.body["snapshot"];
    assert!(snapshot["group_snapshot_id"].is_null());
    assert!(snapshot["user_id"].is_string());
    assert_eq!(snapshot["consumes_quota"], true);
    assert_eq!(at_371.header("openstack-api-version"), Some("volume 3.71"));
}

#[tokio::test]
async fn missing_and_other_projects_snapshots_are_not_found() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    for id in [
        "94100fe0-5a51-4c8a-abb4-60e5f1ea3768".to_owned(),
        h.snapshot(1, 0),
    ] {
        // Exchanges 10 and 11: the same answer for both.
        let answer = h
            .cinder(
                Method::GET,
                &h.project(0),
                &format!("/snapshots/{id}"),
                &token,
                None,
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(
            answer.body,
            json!({"itemNotFound": {"code": 404,
                "message": format!("Snapshot {id} could not be found.")}})
        );
    }
}

#[tokio::test]
async fn filters_by_volume_and_status() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let volume = h.volume_of(0, 1);
    // Exchange 32.
    let answer = h
        .cinder(
            Method::GET,
            &h.project(0),
            &format!("/snapshots/detail?volume_id={volume}&status=available"),
            &token,
            None,
            None,
        )
        .await;
    let snapshots = answer.body["snapshots"].as_array().expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["volume_id"], volume.as_str());

    let answer = h
        .cinder(
            Method::GET,
            &h.project(0),
            "/snapshots?status=error",
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(answer.body["snapshots"], json!([]));
}

#[tokio::test]
async fn full_pages_link_to_the_next_with_the_last_id_as_marker() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    let first = h
        .cinder(
            Method::GET,
            &project,
            "/snapshots?limit=2",
            &token,
            None,
            None,
        )
        .await;
    let page: Vec<String> = first.body["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(page, [h.snapshot(0, 0), h.snapshot(0, 1)]);
    let next = first.body["snapshots_links"][0].clone();
    assert_eq!(next["rel"], "next");
    let href = next["href"].as_str().expect("href");
    assert_eq!(
        href,
        format!(
            "{}/snapshots?limit=2&marker={}",
            h.running.endpoint(&project),
            h.snapshot(0, 1)
        )
    );

    let second = h
        .send(Method::GET, href, &[("x-auth-token", token.as_str())], None)
        .await;
    let snapshots = second.body["snapshots"].as_array().expect("snapshots");
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["id"], h.snapshot(0, 2));
    assert!(second.body.get("snapshots_links").is_none());
}

#[tokio::test]
async fn a_snapshot_marker_is_loaded_by_id_without_the_filters() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    let ids = |path: String| {
        let h = &h;
        let token = &token;
        let project = &project;
        async move {
            let answer = h
                .cinder(Method::GET, project, &path, token, None, None)
                .await;
            (answer.status, answer.body)
        }
    };

    // Snapshot 0 is the newest: snapshot 2's volume lists after it.
    let (status, body) = ids(format!(
        "/snapshots?volume_id={}&marker={}",
        h.volume_of(0, 2),
        h.snapshot(0, 0)
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["snapshots"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["snapshots"][0]["id"], h.snapshot(0, 2));
    // Snapshot 0's volume sorts before snapshot 1.
    let (status, body) = ids(format!(
        "/snapshots?volume_id={}&marker={}",
        h.volume_of(0, 0),
        h.snapshot(0, 1)
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["snapshots"], json!([]));

    // An unknown marker, and another project's, are the snapshot's 404.
    for marker in [
        "00000000-0000-4000-8000-000000000000".to_owned(),
        h.snapshot(1, 0),
    ] {
        let (status, body) = ids(format!("/snapshots?marker={marker}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(
            body,
            json!({"itemNotFound": {"code": 404, "message": format!("Snapshot {marker} could not be found.")}})
        );
    }
}

#[tokio::test]
async fn reader_only_credential_may_list_snapshots() {
    let h = Harness::start().await;
    let reader = h.token_for("reader-appcred-a", "reader-secret-a").await;
    // Exchange 77.
    let answer = h
        .cinder(
            Method::GET,
            &h.project(0),
            "/snapshots",
            &reader,
            None,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn admin_resets_a_snapshot_status_others_may_not() {
    let h = Harness::start().await;
    let snapshot = h.snapshot(0, 0);
    h.sim().set_snapshot_status(&snapshot, "backing-up");
    let body = json!({"os-reset_status": {"status": "available"}});
    let path = format!("/snapshots/{snapshot}/action");

    let member = h.token(0).await;
    let answer = h
        .cinder(
            Method::POST,
            &h.project(0),
            &path,
            &member,
            None,
            Some(&body),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.sim().snapshot_status(&snapshot).as_deref(),
        Some("backing-up")
    );

    // Exchange 27: on the admin's own project path, 202 without a body.
    let admin = h.token_for("admin-appcred", "admin-secret").await;
    let answer = h
        .cinder(
            Method::POST,
            ADMIN_PROJECT,
            &path,
            &admin,
            None,
            Some(&body),
        )
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert!(answer.body.is_null());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        h.sim().snapshot_status(&snapshot).as_deref(),
        Some("available")
    );
}

#[tokio::test]
async fn volume_show_answers_the_projects_volume_only() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let volume = h.volume_of(0, 0);
    let answer = h
        .cinder(
            Method::GET,
            &h.project(0),
            &format!("/volumes/{volume}"),
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["volume"]["id"], volume.as_str());
    assert_eq!(
        answer.body["volume"]["size"],
        h.seed.tenants[0].volumes[0].size
    );

    let other = h.volume_of(1, 0);
    let answer = h
        .cinder(
            Method::GET,
            &h.project(0),
            &format!("/volumes/{other}"),
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.body["itemNotFound"]["message"],
        format!("Volume {other} could not be found.")
    );
}
