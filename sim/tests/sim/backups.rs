//! Backups: create and its refusals in Cinder's order, the life cycle,
//! rendering per microversion, lists and delete (exchanges 12-31, 35-40,
//! 42-51, 55-59, 66-76).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use openstack_sim::Quotas;

use crate::support::{ADMIN_PROJECT, Answer, Harness, keys, sorted};

const DETAIL_KEYS_3_0: &[&str] = &[
    "id",
    "status",
    "size",
    "object_count",
    "availability_zone",
    "container",
    "created_at",
    "updated_at",
    "name",
    "description",
    "fail_reason",
    "volume_id",
    "links",
    "is_incremental",
    "has_dependent_backups",
    "snapshot_id",
    "data_timestamp",
];

fn backup_id(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    answer.body["backup"]["id"]
        .as_str()
        .expect("backup id")
        .to_owned()
}

async fn show(h: &Harness, index: usize, id: &str, token: &str, version: Option<&str>) -> Answer {
    h.cinder(
        Method::GET,
        &h.project(index),
        &format!("/backups/{id}"),
        token,
        version,
        None,
    )
    .await
}

fn assert_bad_request(answer: &Answer, message: &str) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({"badRequest": {"code": 400, "message": message}})
    );
}

#[tokio::test]
async fn backup_runs_creating_then_available_with_the_snapshot_backing_up_meanwhile() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    let snapshot = h.snapshot(0, 0);

    // Exchange 12: 202 with a summary only.
    let created = h
        .create_backup(
            0,
            0,
            &token,
            None,
            json!({"name": "nightly", "description": "d"}),
        )
        .await;
    let id = backup_id(&created);
    assert_eq!(
        keys(&created.body["backup"]),
        sorted(&["id", "name", "links"])
    );
    assert_eq!(created.body["backup"]["name"], "nightly");
    assert_eq!(
        created.body["backup"]["links"],
        json!([
            {"rel": "self", "href": format!("{}/backups/{id}", h.running.endpoint(&project))},
            {"rel": "bookmark", "href": format!("{}/{project}/backups/{id}", h.running.cinder_url)},
        ])
    );
    assert!(created.header("location").is_none());

    // Exchanges 14 and 15.
    assert_eq!(
        h.sim().snapshot_status(&snapshot).as_deref(),
        Some("backing-up")
    );
    let creating = show(&h, 0, &id, &token, None).await;
    let backup = &creating.body["backup"];
    assert_eq!(keys(backup), sorted(DETAIL_KEYS_3_0));
    assert_eq!(backup["status"], "creating");
    assert!(backup["availability_zone"].is_null());
    assert!(backup["container"].is_null());
    assert_eq!(backup["object_count"], 0);
    assert_eq!(backup["size"], h.seed.tenants[0].volumes[0].size);
    assert_eq!(backup["snapshot_id"], snapshot.as_str());
    assert_eq!(backup["has_dependent_backups"], false);

    // Exchange 13: a second backup of the busy snapshot.
    let busy = h.create_backup(0, 0, &token, None, json!({})).await;
    assert_bad_request(
        &busy,
        "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"backing-up\".",
    );

    // Exchange 16: running backups by status.
    let running = h
        .cinder(
            Method::GET,
            &project,
            "/backups/detail?status=creating",
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(running.body["backups"].as_array().map(Vec::len), Some(1));

    // Exchange 17.
    h.sim().finish_pending();
    let done = show(&h, 0, &id, &token, None).await;
    let backup = &done.body["backup"];
    assert_eq!(backup["status"], "available");
    assert_eq!(backup["availability_zone"], "nova");
    assert_eq!(backup["object_count"], 1);
    assert_eq!(
        backup["container"],
        format!("{}/{}/{id}", &id[0..2], &id[2..4]).as_str()
    );
    assert!(backup["fail_reason"].is_null());
    assert_eq!(
        h.sim().snapshot_status(&snapshot).as_deref(),
        Some("available")
    );
    assert_eq!(h.sim().backups(&project).len(), 1);
}

#[tokio::test]
async fn metadata_is_taken_from_3_43_and_refused_before() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let metadata = json!({"metadata": {"gateway_job_id": "job-1", "k2": "v2"}});

    // Exchange 20.
    let refused = h.create_backup(0, 0, &token, None, metadata.clone()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let message = refused.body["badRequest"]["message"]
        .as_str()
        .expect("message");
    // The Value is Python's repr of the body in request order.
    assert!(message.starts_with("Invalid input for field/attribute backup. Value: {"));
    assert!(message.contains("'metadata': {'gateway_job_id': 'job-1', 'k2': 'v2'}"));
    assert!(message.ends_with("Additional properties are not allowed ('metadata' was unexpected)"));
    assert!(h.sim().backups(&h.project(0)).is_empty());

    // Exchanges 18 and 19.
    let id = backup_id(&h.create_backup(0, 0, &token, Some("3.43"), metadata).await);
    let at_343 = show(&h, 0, &id, &token, Some("3.43")).await;
    assert_eq!(at_343.header("openstack-api-version"), Some("volume 3.43"));
    assert_eq!(
        at_343.body["backup"]["metadata"],
        json!({"gateway_job_id": "job-1", "k2": "v2"})
    );
    let mut expected = DETAIL_KEYS_3_0.to_vec();
    expected.push("metadata");
    assert_eq!(keys(&at_343.body["backup"]), sorted(&expected));
    // Not shown at 3.0 (exchange 15).
    let at_30 = show(&h, 0, &id, &token, None).await;
    assert!(at_30.body["backup"].get("metadata").is_none());
    // The control surface renders at 3.43.
    assert_eq!(
        h.sim().backups(&h.project(0))[0]["metadata"]["gateway_job_id"],
        "job-1"
    );
}

#[tokio::test]
async fn unknown_zone_is_accepted_then_errors_and_leaves_the_snapshot_backing_up() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let snapshot = h.snapshot(0, 0);
    let zone = json!({"availability_zone": "no-such-az"});

    // Before 3.51 the key is not in the schema.
    let refused = h
        .create_backup(0, 0, &token, Some("3.50"), zone.clone())
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body["badRequest"]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("('availability_zone' was unexpected)"))
    );

    // Exchanges 23-25.
    let id = backup_id(&h.create_backup(0, 0, &token, Some("3.51"), zone).await);
    let creating = show(&h, 0, &id, &token, Some("3.51")).await;
    assert_eq!(creating.body["backup"]["availability_zone"], "no-such-az");
    h.sim().finish_pending();
    let failed = show(&h, 0, &id, &token, Some("3.51")).await;
    assert_eq!(failed.body["backup"]["status"], "error");
    assert_eq!(
        failed.body["backup"]["fail_reason"],
        "Service not found for creating backup."
    );
    assert!(failed.body["backup"]["container"].is_null());
    assert_eq!(
        h.sim().snapshot_status(&snapshot).as_deref(),
        Some("backing-up")
    );

    // Exchange 26: the stuck snapshot refuses the next backup.
    let next = h.create_backup(0, 0, &token, None, json!({})).await;
    assert_eq!(next.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_known_zone_is_kept_at_3_51() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    // Exchanges 21-22.
    let id = backup_id(
        &h.create_backup(
            0,
            0,
            &token,
            Some("3.51"),
            json!({"availability_zone": "nova"}),
        )
        .await,
    );
    h.sim().finish_pending();
    let done = show(&h, 0, &id, &token, Some("3.51")).await;
    assert_eq!(done.body["backup"]["status"], "available");
    assert_eq!(done.body["backup"]["availability_zone"], "nova");
}

#[tokio::test]
async fn failures_set_by_the_control_surface_release_the_snapshot() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    h.sim().fail_backups(Some("disk on fire".to_owned()));
    let id = backup_id(&h.create_backup(0, 0, &token, None, json!({})).await);
    h.sim().finish_pending();
    let failed = show(&h, 0, &id, &token, None).await;
    assert_eq!(failed.body["backup"]["status"], "error");
    assert_eq!(failed.body["backup"]["fail_reason"], "disk on fire");
    assert_eq!(
        h.sim().snapshot_status(&h.snapshot(0, 0)).as_deref(),
        Some("available")
    );
}

#[tokio::test]
async fn refusals_come_in_cinders_order() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    let post = |backup: Value| {
        let h = &h;
        let token = token.clone();
        let project = project.clone();
        async move {
            h.cinder(
                Method::POST,
                &project,
                "/backups",
                &token,
                None,
                Some(&json!({"backup": backup})),
            )
            .await
        }
    };
    let missing_volume = "8e27c2f6-52a3-4654-927b-126b02a23df4";
    let missing_snapshot = "c97b73cb-a2a6-4d81-b3ec-b4b0afe2fdcb";

    // Exchange 51: the volume is looked up first.
    let answer = post(json!({"volume_id": missing_volume, "snapshot_id": missing_snapshot})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.body["itemNotFound"]["message"],
        format!("Volume {missing_volume} could not be found.")
    );
    // Exchange 49: another project's volume is missing too.
    let answer =
        post(json!({"volume_id": h.volume_of(1, 0), "snapshot_id": h.snapshot(1, 0)})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // Exchanges 47 and 48.
    for snapshot in [missing_snapshot.to_owned(), h.snapshot(1, 0)] {
        let answer = post(json!({"volume_id": h.volume_of(0, 0), "snapshot_id": snapshot})).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(
            answer.body["itemNotFound"]["message"],
            format!("Snapshot {snapshot} could not be found.")
        );
    }
    // Exchange 50.
    let answer =
        post(json!({"volume_id": h.volume_of(0, 1), "snapshot_id": h.snapshot(0, 0)})).await;
    assert_bad_request(
        &answer,
        &format!(
            "Invalid volume: Volume {} does not match with snapshot.volume_id {}.",
            h.volume_of(0, 1),
            h.volume_of(0, 0)
        ),
    );
    // Exchange 57: the schema comes before everything.
    let answer = post(json!({"snapshot_id": h.snapshot(0, 0)})).await;
    assert_bad_request(
        &answer,
        &format!(
            "Invalid input for field/attribute backup. Value: {{'snapshot_id': '{}'}}. 'volume_id' is a required property",
            h.snapshot(0, 0)
        ),
    );
    // Exchange 55.
    let url = format!("{}/backups", h.running.endpoint(&project));
    let answer = h
        .send(
            Method::POST,
            &url,
            &[("x-auth-token", token.as_str())],
            Some("{\"backup\": {"),
        )
        .await;
    assert_bad_request(&answer, "Malformed request body");
    // Exchange 45.
    let long = "n".repeat(256);
    let answer = post(json!({"volume_id": h.volume_of(0, 0), "name": long})).await;
    assert_bad_request(
        &answer,
        &format!("Invalid input for field/attribute name. Value: {long}. '{long}' is too long"),
    );
    // A volume backup of an in-use volume needs force.
    let answer = post(json!({"volume_id": h.volume_of(0, 0)})).await;
    assert_bad_request(
        &answer,
        "Invalid volume: Backing up an in-use volume must use the force flag.",
    );
    assert!(h.sim().backups(&project).is_empty());

    // Exchange 42: every 3.0 field.
    let answer = post(json!({
        "volume_id": h.volume_of(0, 0), "snapshot_id": h.snapshot(0, 0),
        "name": "full", "description": "all 3.0 fields",
        "container": null, "incremental": false, "force": false,
    }))
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn reader_only_credential_may_not_create() {
    let h = Harness::start().await;
    let reader = h.token_for("reader-appcred-a", "reader-secret-a").await;
    // Exchange 76.
    let answer = h
        .create_backup(0, 0, &reader, None, json!({"name": "rec-reader"}))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.body,
        json!({"forbidden": {"code": 403,
            "message": "Policy doesn't allow backup:create to be performed."}})
    );
    assert_eq!(
        h.sim().snapshot_status(&h.snapshot(0, 0)).as_deref(),
        Some("available")
    );
    // Listing stays allowed.
    let list = h
        .cinder(Method::GET, &h.project(0), "/backups", &reader, None, None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
}

#[tokio::test]
async fn quotas_refuse_with_413_and_retry_after_zero() {
    let h = Harness::start().await;
    let token = h.token(1).await;
    let project = h.project(1);
    let admin = h.token_for("admin-appcred", "admin-secret").await;
    let quota_path = format!("/os-quota-sets/{project}");

    // Exchange 66: an admin sets backups to the current usage (0).
    let set = h
        .cinder(
            Method::PUT,
            ADMIN_PROJECT,
            &quota_path,
            &admin,
            None,
            Some(&json!({"quota_set": {"backups": 0}})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);
    assert_eq!(set.body["quota_set"]["backups"], 0);
    assert_eq!(set.body["quota_set"]["groups"], 10);

    // Exchange 67.
    let refused = h
        .create_backup(1, 0, &token, None, json!({"name": "rec-quota"}))
        .await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(refused.header("retry-after"), Some("0"));
    assert_eq!(
        refused.body,
        json!({"overLimit": {"code": 413, "retryAfter": "0",
            "message": "BackupLimitExceeded: Maximum number of backups allowed (0) exceeded"}})
    );

    // Exchange 68-69: gigabytes, charged with the volume's size.
    let set = h
        .cinder(
            Method::PUT,
            ADMIN_PROJECT,
            &quota_path,
            &admin,
            None,
            Some(&json!({"quota_set": {"backups": -1, "backup_gigabytes": 0}})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);
    let size = h.seed.tenants[1].volumes[0].size;
    let refused = h.create_backup(1, 0, &token, None, json!({})).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        refused.body["overLimit"]["message"],
        format!(
            "VolumeBackupSizeExceedsAvailableQuota: Requested backup exceeds allowed Backup gigabytes quota. Requested {size}G, quota is 0G and 0G has been consumed."
        )
    );
    assert_eq!(
        h.sim().snapshot_status(&h.snapshot(1, 0)).as_deref(),
        Some("available")
    );

    // With room for one backup, the second is refused and a limit under
    // the usage cannot be set.
    h.sim().set_quotas(
        &project,
        Quotas {
            backups: 1,
            backup_gigabytes: -1,
        },
    );
    backup_id(&h.create_backup(1, 0, &token, None, json!({})).await);
    let second = h.create_backup(1, 1, &token, None, json!({})).await;
    assert_eq!(second.status, StatusCode::PAYLOAD_TOO_LARGE);
    let below = h
        .cinder(
            Method::PUT,
            ADMIN_PROJECT,
            &quota_path,
            &admin,
            None,
            Some(&json!({"quota_set": {"backups": 0}})),
        )
        .await;
    assert_eq!(below.status, StatusCode::BAD_REQUEST);

    // Exchange 70: the tenant reads its usage.
    let usage = h
        .cinder(
            Method::GET,
            &project,
            &format!("{quota_path}?usage=True"),
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(usage.status, StatusCode::OK);
    let set = &usage.body["quota_set"];
    assert_eq!(set["id"], project.as_str());
    assert_eq!(
        set["backups"],
        json!({"limit": 1, "in_use": 1, "reserved": 0})
    );
    assert_eq!(set["backup_gigabytes"]["in_use"], size);

    // Only an admin updates quotas.
    let member = h
        .cinder(
            Method::PUT,
            &project,
            &quota_path,
            &token,
            None,
            Some(&json!({"quota_set": {"backups": 5}})),
        )
        .await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn incremental_needs_an_available_backup_of_the_volume() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let incremental = json!({"incremental": true});

    let refused = h
        .create_backup(0, 0, &token, None, incremental.clone())
        .await;
    assert_bad_request(
        &refused,
        "Invalid backup: No backups available to do an incremental backup.",
    );

    let full = backup_id(&h.create_backup(0, 0, &token, None, json!({})).await);
    h.sim().finish_pending();
    // Exchange 43: accepted once a full backup of the volume exists.
    let incr = backup_id(&h.create_backup(0, 0, &token, None, incremental).await);
    let shown = show(&h, 0, &incr, &token, None).await;
    assert_eq!(shown.body["backup"]["is_incremental"], true);
    let parent = show(&h, 0, &full, &token, None).await;
    assert_eq!(parent.body["backup"]["has_dependent_backups"], true);

    // Exchange 44: no new object for unchanged data.
    h.sim().finish_pending();
    let done = show(&h, 0, &incr, &token, None).await;
    assert_eq!(done.body["backup"]["object_count"], 0);

    // The parent cannot go while its child exists.
    let delete = h
        .cinder(
            Method::DELETE,
            &h.project(0),
            &format!("/backups/{full}"),
            &token,
            None,
            None,
        )
        .await;
    assert_bad_request(
        &delete,
        "Invalid backup: Incremental backups exist for this backup.",
    );
}

#[tokio::test]
async fn delete_goes_through_deleting_then_the_backup_is_gone() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    let id = backup_id(&h.create_backup(0, 0, &token, None, json!({})).await);
    let path = format!("/backups/{id}");

    // Still creating: refused.
    let early = h
        .cinder(Method::DELETE, &project, &path, &token, None, None)
        .await;
    assert_bad_request(
        &early,
        "Invalid backup: Backup status must be available or error",
    );

    h.sim().finish_pending();
    // Exchange 75: not another project's.
    let token_b = h.token(1).await;
    let other = h
        .cinder(Method::DELETE, &h.project(1), &path, &token_b, None, None)
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    // Exchange 46.
    let other = show(&h, 1, &id, &token_b, None).await;
    assert_eq!(
        other.body["itemNotFound"]["message"],
        format!("Backup {id} could not be found.")
    );

    // Exchanges 71-72.
    let deleted = h
        .cinder(Method::DELETE, &project, &path, &token, None, None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert!(deleted.body.is_null());
    let deleting = show(&h, 0, &id, &token, None).await;
    assert_eq!(deleting.body["backup"]["status"], "deleting");

    // Exchanges 73-74.
    h.sim().finish_pending();
    let gone = show(&h, 0, &id, &token, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let again = h
        .cinder(Method::DELETE, &project, &path, &token, None, None)
        .await;
    assert_eq!(
        again.body,
        json!({"itemNotFound": {"code": 404, "message": format!("Backup {id} could not be found.")}})
    );
    assert!(h.sim().backups(&project).is_empty());
}

/// Three finished backups of tenant-a, newest first.
async fn three_backups(h: &Harness, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..3 {
        let meta = json!({"metadata": {"n": n.to_string()}});
        ids.push(backup_id(
            &h.create_backup(0, n, token, Some("3.43"), meta).await,
        ));
    }
    h.sim().finish_pending();
    ids.reverse();
    ids
}

#[tokio::test]
async fn full_pages_link_to_the_next_keeping_the_other_parameters() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    let ids = three_backups(&h, &token).await;

    // Exchange 28: summaries.
    let list = h
        .cinder(Method::GET, &project, "/backups", &token, None, None)
        .await;
    let listed: Vec<&str> = list.body["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .map(|b| {
            assert_eq!(keys(b), sorted(&["id", "name", "links"]));
            b["id"].as_str().expect("id")
        })
        .collect();
    assert_eq!(listed, ids);

    // Exchanges 31 and 39.
    let first = h
        .cinder(
            Method::GET,
            &project,
            "/backups/detail?limit=1",
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(first.body["backups"][0]["id"], ids[0].as_str());
    assert_eq!(
        first.body["backups_links"],
        json!([{"rel": "next", "href": format!(
            "{}/backups/detail?limit=1&marker={}", h.running.endpoint(&project), ids[0])}])
    );
    let second = h
        .cinder(
            Method::GET,
            &project,
            &format!("/backups/detail?limit=1&marker={}", ids[0]),
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(second.body["backups"][0]["id"], ids[1].as_str());
    let last = h
        .cinder(
            Method::GET,
            &project,
            &format!("/backups/detail?limit=2&marker={}", ids[1]),
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(last.body["backups"].as_array().map(Vec::len), Some(1));
    assert!(last.body.get("backups_links").is_none());

    // Exchange 40: with_count at 3.45 counts every match.
    let counted = h
        .cinder(
            Method::GET,
            &project,
            "/backups/detail?with_count=true&limit=1",
            &token,
            Some("3.45"),
            None,
        )
        .await;
    assert_eq!(counted.body["count"], 3);
    assert_eq!(
        counted.body["backups_links"][0]["href"],
        format!(
            "{}/backups/detail?with_count=true&limit=1&marker={}",
            h.running.endpoint(&project),
            ids[0]
        )
        .as_str()
    );
}

/// The ids of a backup list answer, in order.
fn listed_ids(answer: &Answer) -> Vec<&str> {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .map(|b| b["id"].as_str().expect("id"))
        .collect()
}

#[tokio::test]
async fn a_marker_that_does_not_match_the_filters_still_positions_the_page() {
    // Cinder loads the marker by id alone and lists what sorts after it
    // (`_generate_paginate_query`): a backup that left `creating` between
    // two pages of `status=creating` still marks where the next page starts.
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    let ids = three_backups(&h, &token).await;
    let of_volume_1 = |marker: &str| {
        format!(
            "/backups/detail?volume_id={}&marker={marker}",
            h.volume_of(0, 1)
        )
    };

    // ids[0] (of volume 2) is newer than the backup of volume 1 ...
    let after_newer = h
        .cinder(
            Method::GET,
            &project,
            &of_volume_1(&ids[0]),
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(listed_ids(&after_newer), [ids[1].as_str()]);
    // ... and ids[2] (of volume 0) older: nothing sorts after it.
    let after_older = h
        .cinder(
            Method::GET,
            &project,
            &of_volume_1(&ids[2]),
            &token,
            None,
            None,
        )
        .await;
    assert!(listed_ids(&after_older).is_empty());
    // The same with a status filter the marker no longer matches.
    let creating = h
        .cinder(
            Method::GET,
            &project,
            &format!("/backups/detail?status=creating&marker={}", ids[0]),
            &token,
            None,
            None,
        )
        .await;
    assert!(listed_ids(&creating).is_empty());
}

#[tokio::test]
async fn an_unknown_or_other_projects_marker_is_the_backups_404() {
    let h = Harness::start().await;
    let token_a = h.token(0).await;
    let token_b = h.token(1).await;
    three_backups(&h, &token_a).await;
    let of_b = backup_id(&h.create_backup(1, 0, &token_b, None, json!({})).await);
    let unknown = "00000000-0000-4000-8000-000000000000";

    for marker in [unknown, of_b.as_str()] {
        let answer = h
            .cinder(
                Method::GET,
                &h.project(0),
                &format!("/backups/detail?status=available&marker={marker}"),
                &token_a,
                None,
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
        assert_eq!(
            answer.body,
            json!({"itemNotFound": {"code": 404, "message": format!("Backup {marker} could not be found.")}})
        );
    }
}

#[tokio::test]
async fn unknown_filters_are_ignored_at_3_0_and_refused_from_3_31() {
    let h = Harness::start().await;
    let token = h.token(0).await;
    let project = h.project(0);
    let ids = three_backups(&h, &token).await;

    // Exchange 37.
    let ignored = h
        .cinder(
            Method::GET,
            &project,
            "/backups/detail?foo=bar",
            &token,
            None,
            None,
        )
        .await;
    assert_eq!(ignored.status, StatusCode::OK);
    assert_eq!(ignored.body["backups"].as_array().map(Vec::len), Some(3));
    // Exchange 38.
    let refused = h
        .cinder(
            Method::GET,
            &project,
            "/backups/detail?foo=bar",
            &token,
            Some("3.31"),
            None,
        )
        .await;
    assert_bad_request(&refused, "Invalid filters foo are found in query options.");
    // Exchange 36: metadata is not a backup filter.
    let refused = h
        .cinder(
            Method::GET,
            &project,
            "/backups/detail?metadata=%7B%22n%22%3A%20%221%22%7D",
            &token,
            Some("3.43"),
            None,
        )
        .await;
    assert_bad_request(
        &refused,
        "Invalid filters metadata are found in query options.",
    );

    // Exchange 35: by volume, at 3.43 with the metadata to search.
    let by_volume = h
        .cinder(
            Method::GET,
            &project,
            &format!("/backups/detail?volume_id={}", h.volume_of(0, 1)),
            &token,
            Some("3.43"),
            None,
        )
        .await;
    let found = by_volume.body["backups"].as_array().expect("backups");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], ids[1].as_str());
    assert_eq!(found[0]["metadata"], json!({"n": "1"}));
}
