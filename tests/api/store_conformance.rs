//! One conformance suite for every job store: each case runs against
//! SQLite and against PostgreSQL (a schema of its own per test). The cases
//! hold the store to the `JobStore` contract the job rules rely on: every
//! method, the per-snapshot uniqueness and compare-and-set under concurrent
//! writers, idempotency keys racing, paging and filters, purging, and the
//! tenant leases with their fencing.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use backup_gateway::{
    jobs::{
        events::{EventFilter, EventKind, EventRange, JobEvent},
        model::{BackupOptions, Job, JobId, JobState},
    },
    problem::{Problem, ProblemKind},
    store::{Error, Fence, JobFilter, JobStore, KeyUse, Reservation, TenantKey},
};
use chrono::{DateTime, Utc};

use super::databases::TestDatabase;

/// Runs each listed case once per store kind.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = super::TestDatabase::sqlite();
                    super::$case(&db, db.store().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = super::TestDatabase::postgres().await;
                    super::$case(&db, db.store().await).await;
                }
            )*
        }
    };
}

conformance!(
    a_job_reads_back_as_written,
    one_unfinished_job_per_snapshot_and_tenant_under_concurrent_inserts,
    compare_and_set_updates_racing_have_one_winner,
    a_batch_of_updates_writes_each_job_by_the_rules_of_one,
    an_idempotency_key_reserved_by_racing_requests_has_one_owner,
    an_idempotency_key_binds_its_job_and_follows_its_life,
    listing_pages_newest_first_and_filters,
    only_an_unshown_job_at_its_version_is_deleted,
    the_unfinished_jobs_are_scanned_and_unreadable_rows_reported,
    purging_removes_only_old_finished_jobs_and_keys_in_batches,
    a_lease_has_one_holder_and_fences_the_writes_of_a_lost_one,
    racing_replicas_take_a_free_lease_once,
    replicas_are_counted_while_they_beat_and_forgotten_when_they_leave,
    jobs_are_counted_by_state,
    every_change_of_a_job_is_one_event_numbered_per_tenant,
    events_are_purged_by_age_and_their_numbers_never_repeat,
    concurrent_writers_number_a_tenants_events_without_gaps,
    a_webhooks_deliveries_are_recorded_once_whoever_records_them,
    a_due_delivery_is_claimed_by_one_holder_and_its_attempts_recorded,
    a_held_callback_waits_for_its_release,
);

fn job(project: &str, snapshot: &str, volume: &str) -> Job {
    Job::new(
        project.into(),
        format!("cloud-{project}"),
        snapshot.into(),
        volume.into(),
        BackupOptions::default(),
    )
}

fn tenant_of(job: &Job) -> TenantKey {
    TenantKey {
        cloud: job.cloud.clone(),
        project_id: job.project_id.clone(),
    }
}

fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).expect("time")
}

async fn a_job_reads_back_as_written(_db: &TestDatabase, store: Arc<dyn JobStore>) {
    let mut written = job("p1", "snap-1", "vol-1");
    written.options = BackupOptions {
        name: Some("nightly ü".into()),
        description: Some("with \"quotes\"".into()),
        incremental: Some(true),
        force: Some(false),
        container: Some("c1".into()),
        availability_zone: Some("az-2".into()),
        metadata: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        callback_url: Some("https://hooks.example.com/b?x=1".into()),
    };
    written.size_gib = Some(40);
    store.insert(&written, None).await.expect("insert");
    assert_eq!(
        store.get(written.id).await.expect("get"),
        Some(written.clone())
    );

    // Every field a write changes comes back.
    let mut changed = written.clone();
    changed.start("backup-1".into(), Some("req-1".into()));
    changed.attempts = 3;
    changed.error = Some(Problem::new(ProblemKind::UpstreamUnavailable, "was slow"));
    changed.posted_at = Some(ms(Utc::now()));
    changed.next_attempt_at = Some(ms(Utc::now()));
    changed.expected_completion_at = Some(ms(Utc::now() + chrono::Duration::minutes(5)));
    assert!(store.update(&changed, None).await.expect("update"));
    changed.version += 1;
    assert_eq!(store.get(written.id).await.expect("get"), Some(changed));
    assert_eq!(store.get(JobId::new()).await.expect("get"), None);
    store.ping().await.expect("ping");
    assert!(["sqlite", "postgres"].contains(&store.kind()));
}

async fn one_unfinished_job_per_snapshot_and_tenant_under_concurrent_inserts(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let attempts: Vec<Job> = (0..20).map(|_| job("p1", "snap-1", "vol-1")).collect();
    let results = futures_join(attempts.iter().map(|j| {
        let store = store.clone();
        let j = j.clone();
        async move { store.insert(&j, None).await }
    }))
    .await;
    let won: Vec<&Job> = attempts
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(j, _)| j)
        .collect();
    assert_eq!(won.len(), 1, "one insert wins: {results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(Error::ActiveJobExists))),
        "the others are told the snapshot is busy: {results:?}"
    );
    // Another tenant's job of the same snapshot id is its own.
    store
        .insert(&job("p2", "snap-1", "vol-1"), None)
        .await
        .expect("another tenant");
    let active = store
        .active_for_snapshot("p1", "snap-1")
        .await
        .expect("read")
        .expect("the winner");
    assert_eq!(active.id, won[0].id);

    // Once it finished, the snapshot takes a new job; a finished job never
    // turns unfinished next to another one.
    let mut finished = active.clone();
    finished.succeed();
    assert!(store.update(&finished, None).await.expect("finish"));
    let next = job("p1", "snap-1", "vol-1");
    store
        .insert(&next, None)
        .await
        .expect("a new job after the end");
    let mut revived = finished.clone();
    revived.version += 1;
    revived.state = JobState::Queued;
    assert!(matches!(
        store.update(&revived, None).await,
        Err(Error::ActiveJobExists)
    ));
}

async fn compare_and_set_updates_racing_have_one_winner(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let original = job("p1", "snap-1", "vol-1");
    store.insert(&original, None).await.expect("insert");
    let writers: Vec<Job> = (0..10)
        .map(|n| {
            let mut j = original.clone();
            if n % 2 == 0 {
                j.cancel();
            } else {
                j.attempts = n;
                j.posted_at = Some(ms(Utc::now()));
            }
            j
        })
        .collect();
    let results = futures_join(writers.iter().map(|j| {
        let store = store.clone();
        let j = j.clone();
        async move { store.update(&j, None).await.expect("update") }
    }))
    .await;
    assert_eq!(results.iter().filter(|w| **w).count(), 1, "{results:?}");
    let winner = &writers[results.iter().position(|w| *w).expect("winner")];
    let stored = store.get(original.id).await.expect("get").expect("kept");
    assert_eq!(stored.version, 1);
    assert_eq!(stored.state, winner.state);
    assert_eq!(stored.attempts, winner.attempts);
    // A write from the old version loses from now on.
    assert!(!store.update(&writers[0], None).await.expect("update"));
}

async fn a_batch_of_updates_writes_each_job_by_the_rules_of_one(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    // Three running jobs; the second's copy is stale (written since).
    let mut jobs: Vec<Job> = ["snap-1", "snap-2", "snap-3"]
        .iter()
        .map(|snapshot| {
            let mut j = job("p1", snapshot, "vol-1");
            j.start(format!("backup-{snapshot}"), None);
            j
        })
        .collect();
    for j in &jobs {
        store.insert(j, None).await.expect("insert");
    }
    let mut newer = jobs[1].clone();
    newer.attempts = 7;
    assert!(store.update(&newer, None).await.expect("update"));

    jobs[0].succeed();
    jobs[1].succeed();
    jobs[2].attempts = 2;
    let batch = vec![jobs[0].clone(), jobs[1].clone(), jobs[2].clone()];
    let written = store.update_all(&batch, None).await.expect("batch");

    assert_eq!(written, vec![true, false, true], "each by its own version");
    let first = store.get(jobs[0].id).await.expect("get").expect("kept");
    assert_eq!((first.state, first.version), (JobState::Succeeded, 1));
    let second = store.get(jobs[1].id).await.expect("get").expect("kept");
    assert_eq!(
        (second.state, second.attempts, second.version),
        (JobState::Running, 7, 1),
        "the other writer's state stands"
    );

    let third = store.get(jobs[2].id).await.expect("get").expect("kept");
    assert_eq!((third.attempts, third.version), (2, 1));

    // A lease no longer held refuses every write of a batch.
    let mut third = third;
    third.succeed();
    let stale = Fence {
        holder: "gone-replica".into(),
        generation: 1,
    };
    let written = store
        .update_all(std::slice::from_ref(&third), Some(&stale))
        .await
        .expect("batch");
    assert_eq!(written, vec![false]);
    let kept = store.get(third.id).await.expect("get").expect("kept");
    assert_eq!(kept.state, JobState::Running);
}

fn key_use<'a>(project: &'a str, key: &'a str, at: DateTime<Utc>) -> KeyUse<'a> {
    KeyUse {
        project_id: project,
        key,
        reserved_at: at,
    }
}

async fn an_idempotency_key_reserved_by_racing_requests_has_one_owner(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let at = ms(Utc::now());
    let results = futures_join((0..10).map(|n| {
        let store = store.clone();
        async move {
            store
                .reserve_key(key_use("p1", "key-1", at), &format!("request {n}"), at)
                .await
                .expect("reserve")
        }
    }))
    .await;
    let owners = results
        .iter()
        .filter(|r| **r == Reservation::Reserved)
        .count();
    assert_eq!(owners, 1, "{results:?}");
    for result in &results {
        if let Reservation::Existing(record) = result {
            assert!(record.request.starts_with("request "));
            assert_eq!(record.job_id, None);
            assert!(!record.answered);
            assert_eq!(record.created_at, at);
        }
    }
    // The same key in another tenant is another key.
    assert_eq!(
        store
            .reserve_key(key_use("p2", "key-1", at), "x", at)
            .await
            .expect("reserve"),
        Reservation::Reserved
    );

    // An abandoned reservation is taken over once, by one of the racers.
    let later = at + chrono::Duration::seconds(5);
    let takeovers = futures_join((0..10).map(|_| {
        let store = store.clone();
        async move {
            store
                .take_over_key(key_use("p1", "key-1", at), at, later)
                .await
                .expect("take over")
        }
    }))
    .await;
    assert_eq!(takeovers.iter().filter(|t| **t).count(), 1, "{takeovers:?}");

    // The request that lost its key can no longer bind a job to it.
    let lost = job("p1", "snap-1", "vol-1");
    assert!(matches!(
        store.insert(&lost, Some(key_use("p1", "key-1", at))).await,
        Err(Error::KeyLost)
    ));
    assert_eq!(
        store.get(lost.id).await.expect("get"),
        None,
        "nothing recorded"
    );
    // The one that holds it can; a released key is free again.
    store
        .release_key(key_use("p1", "key-1", later))
        .await
        .expect("release");
    assert_eq!(
        store
            .reserve_key(key_use("p1", "key-1", later), "again", later)
            .await
            .expect("reserve"),
        Reservation::Reserved
    );
}

async fn an_idempotency_key_binds_its_job_and_follows_its_life(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let at = ms(Utc::now());
    let key = key_use("p1", "key-1", at);
    assert_eq!(
        store.reserve_key(key, "req", at).await.expect("reserve"),
        Reservation::Reserved
    );
    let bound = job("p1", "snap-1", "vol-1");
    store.insert(&bound, Some(key)).await.expect("insert");
    store.mark_key_answered(key).await.expect("answered");
    let Reservation::Existing(record) = store.reserve_key(key, "req", at).await.expect("read")
    else {
        panic!("the key is taken");
    };
    assert_eq!(record.job_id, Some(bound.id));
    assert!(record.answered);
    // A bound key is neither taken over nor released.
    assert!(!store.take_over_key(key, at, at).await.expect("take over"));
    store.release_key(key).await.expect("release");
    assert!(matches!(
        store.reserve_key(key, "req", at).await.expect("read"),
        Reservation::Existing(_)
    ));
    // Removing the job (refused before anyone saw it) frees its key too.
    assert!(store.delete(bound.id, 0, Some(key)).await.expect("delete"));
    assert_eq!(
        store.reserve_key(key, "req", at).await.expect("reserve"),
        Reservation::Reserved
    );
}

async fn listing_pages_newest_first_and_filters(_db: &TestDatabase, store: Arc<dyn JobStore>) {
    let mut ids = Vec::new();
    for n in 0..7 {
        let mut j = job("p1", &format!("snap-{}", n % 3), &format!("vol-{}", n % 2));
        if n < 4 {
            // Finished, so the snapshot takes more jobs.
            j.fail(Problem::new(ProblemKind::BackupFailed, "no"));
        }
        store.insert(&j, None).await.expect("insert");
        ids.push(j.id);
        // Ids are time-ordered at millisecond grain.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    store
        .insert(&job("p2", "snap-0", "vol-0"), None)
        .await
        .expect("other tenant");
    let all = |filter: JobFilter, limit, before| {
        let store = store.clone();
        async move {
            store
                .list("p1", &filter, limit, before)
                .await
                .expect("list")
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    let newest_first: Vec<JobId> = ids.iter().rev().copied().collect();
    assert_eq!(all(JobFilter::default(), 100, None).await, newest_first);
    assert_eq!(all(JobFilter::default(), 3, None).await, newest_first[..3]);
    assert_eq!(
        all(JobFilter::default(), 3, Some(newest_first[2])).await,
        newest_first[3..6]
    );
    assert_eq!(
        all(JobFilter::default(), 3, Some(newest_first[6])).await,
        Vec::<JobId>::new()
    );
    let failed = JobFilter {
        state: Some(JobState::Failed),
        ..Default::default()
    };
    assert_eq!(all(failed, 100, None).await, newest_first[3..]);
    let snapshot = JobFilter {
        snapshot_id: Some("snap-1".into()),
        ..Default::default()
    };
    assert_eq!(
        all(snapshot, 100, None).await,
        vec![ids[4], ids[1]],
        "jobs 1 and 4 are of snap-1"
    );
    let volume_and_state = JobFilter {
        volume_id: Some("vol-1".into()),
        state: Some(JobState::Queued),
        ..Default::default()
    };
    assert_eq!(all(volume_and_state, 100, None).await, vec![ids[5]]);
}

async fn only_an_unshown_job_at_its_version_is_deleted(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let unshown = job("p1", "snap-1", "vol-1");
    store.insert(&unshown, None).await.expect("insert");
    assert!(
        !store.delete(unshown.id, 1, None).await.expect("delete"),
        "wrong version"
    );
    assert!(store.delete(unshown.id, 0, None).await.expect("delete"));
    assert_eq!(store.get(unshown.id).await.expect("get"), None);

    let shown = job("p1", "snap-1", "vol-1");
    store.insert(&shown, None).await.expect("insert");
    store.mark_shown(shown.id).await.expect("shown");
    store
        .mark_shown(shown.id)
        .await
        .expect("shown twice is fine");
    let stored = store.get(shown.id).await.expect("get").expect("kept");
    assert!(stored.shown);
    assert_eq!(stored.version, 0, "showing is not a change of the job");
    assert!(!store.delete(shown.id, 0, None).await.expect("delete"));
    assert!(store.get(shown.id).await.expect("get").is_some());
}

async fn the_unfinished_jobs_are_scanned_and_unreadable_rows_reported(
    db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let queued = job("p1", "snap-1", "vol-1");
    let mut running = job("p1", "snap-2", "vol-1");
    running.start("b".into(), None);
    let mut done = job("p2", "snap-3", "vol-2");
    done.succeed();
    let bad = job("p2", "snap-4", "vol-2");
    for j in [&queued, &running, &done, &bad] {
        store.insert(j, None).await.expect("insert");
    }
    let damage = match db {
        TestDatabase::Sqlite { .. } => {
            format!(
                "UPDATE jobs SET options = 'not json' WHERE id = '{}'",
                bad.id
            )
        }
        TestDatabase::Postgres { .. } => format!(
            "UPDATE jobs SET options = '{{\"incremental\": \"yes\"}}' WHERE id = '{}'",
            bad.id
        ),
    };
    db.execute(&damage).await;
    // SQLite: opened again, as a process finds the damage when it starts
    // (a SQLite store belongs to one process, which keeps the jobs it
    // wrote in memory). PostgreSQL: the live store sees another process's
    // change, as replicas must.
    let store = match db {
        TestDatabase::Sqlite { .. } => {
            drop(store);
            db.store().await
        }
        TestDatabase::Postgres { .. } => store,
    };

    let scan = store.active().await.expect("scan");
    let ids: Vec<JobId> = scan.jobs.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        vec![queued.id, running.id],
        "oldest first, finished left out"
    );
    assert_eq!(scan.unreadable.len(), 1, "{:?}", scan.unreadable);
    assert_eq!(scan.unreadable[0].0, bad.id.to_string());
    // A listing leaves the bad row out and shows the rest.
    let listed = store
        .list("p2", &JobFilter::default(), 10, None)
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![done.id]
    );
    assert_eq!(
        store
            .active_for_snapshot("p1", "snap-2")
            .await
            .expect("read")
            .map(|j| j.id),
        Some(running.id)
    );
    assert_eq!(
        store
            .active_for_snapshot("p2", "snap-3")
            .await
            .expect("read"),
        None
    );
}

async fn purging_removes_only_old_finished_jobs_and_keys_in_batches(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let mut old = Vec::new();
    for n in 0..5 {
        let mut j = job("p1", &format!("snap-{n}"), "vol-1");
        j.succeed();
        j.finished_at = Some(ms(Utc::now() - chrono::Duration::days(2)));
        store.insert(&j, None).await.expect("insert");
        old.push(j.id);
    }
    let mut recent = job("p1", "snap-r", "vol-1");
    recent.cancel();
    let unfinished = job("p1", "snap-u", "vol-1");
    store.insert(&recent, None).await.expect("insert");
    store.insert(&unfinished, None).await.expect("insert");
    let cutoff = Utc::now() - chrono::Duration::days(1);

    assert_eq!(store.purge_finished(cutoff, 3).await.expect("purge"), 3);
    assert_eq!(store.purge_finished(cutoff, 3).await.expect("purge"), 2);
    assert_eq!(store.purge_finished(cutoff, 3).await.expect("purge"), 0);
    for id in old {
        assert_eq!(store.get(id).await.expect("get"), None);
    }
    assert!(store.get(recent.id).await.expect("get").is_some());
    assert!(store.get(unfinished.id).await.expect("get").is_some());

    let long_ago = ms(Utc::now() - chrono::Duration::days(3));
    let now = ms(Utc::now());
    for key in ["a", "b", "c"] {
        store
            .reserve_key(key_use("p1", key, long_ago), "r", long_ago)
            .await
            .expect("reserve");
    }
    store
        .reserve_key(key_use("p1", "fresh", now), "r", now)
        .await
        .expect("reserve");
    assert_eq!(store.purge_keys(cutoff, 2).await.expect("purge"), 2);
    assert_eq!(store.purge_keys(cutoff, 2).await.expect("purge"), 1);
    assert!(matches!(
        store
            .reserve_key(key_use("p1", "fresh", now), "r", now)
            .await
            .expect("read"),
        Reservation::Existing(_)
    ));
}

async fn a_lease_has_one_holder_and_fences_the_writes_of_a_lost_one(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let queued = job("p1", "snap-1", "vol-1");
    store.insert(&queued, None).await.expect("insert");
    let tenant = tenant_of(&queued);
    let short = Duration::from_millis(600);

    let first = store
        .acquire_lease(&tenant, "replica-a", short)
        .await
        .expect("acquire")
        .expect("free, so taken");
    assert_eq!(
        store
            .acquire_lease(&tenant, "replica-b", short)
            .await
            .expect("acquire"),
        None,
        "held by a"
    );
    // Taken again under the same name (a restarted replica): a new tenure,
    // whose generation the earlier one's writes do not carry.
    let first_again = store
        .acquire_lease(&tenant, "replica-a", short)
        .await
        .expect("acquire")
        .expect("its own name");
    assert!(first_again > first);
    let stale = Fence {
        holder: "replica-a".into(),
        generation: first,
    };
    let a = Fence {
        holder: "replica-a".into(),
        generation: first_again,
    };
    let mut write = queued.clone();
    write.attempts = 1;
    assert!(
        !store
            .update(&write, Some(&stale))
            .await
            .expect("fenced write")
    );
    assert!(store.update(&write, Some(&a)).await.expect("fenced write"));
    write.version += 1;
    let renewed = store.renew_leases("replica-a", short).await.expect("renew");
    assert_eq!(renewed.len(), 1);
    assert_eq!(renewed[0].tenant, tenant);
    assert_eq!(
        renewed[0].generation, first_again,
        "renewing keeps the tenure"
    );

    // a stops renewing (it died, or stalled): once the lease expired its
    // writes are refused, even before anyone else takes the tenant.
    tokio::time::sleep(short * 2).await;
    write.attempts = 2;
    assert!(
        !store.update(&write, Some(&a)).await.expect("fenced write"),
        "a write under an expired lease is refused"
    );
    // b takes it with a new generation.
    let second = store
        .acquire_lease(&tenant, "replica-b", short * 100)
        .await
        .expect("acquire")
        .expect("expired, so taken over");
    assert!(second > first_again);
    assert!(
        !store.update(&write, Some(&a)).await.expect("fenced write"),
        "the old holder's write is refused"
    );
    assert!(
        store
            .renew_leases("replica-a", short)
            .await
            .expect("renew")
            .is_empty()
    );
    let b = Fence {
        holder: "replica-b".into(),
        generation: second,
    };
    assert!(store.update(&write, Some(&b)).await.expect("fenced write"));
    assert_eq!(
        store
            .get(queued.id)
            .await
            .expect("get")
            .expect("kept")
            .attempts,
        2
    );
    // Given back, it is free for anyone at once.
    store
        .release_lease(&tenant, "replica-a")
        .await
        .expect("not a's to give");
    assert_eq!(
        store
            .acquire_lease(&tenant, "replica-c", short)
            .await
            .expect("acquire"),
        None
    );
    store
        .release_lease(&tenant, "replica-b")
        .await
        .expect("release");
    assert!(
        store
            .acquire_lease(&tenant, "replica-c", short)
            .await
            .expect("acquire")
            .is_some_and(|g| g > second)
    );
}

async fn racing_replicas_take_a_free_lease_once(_db: &TestDatabase, store: Arc<dyn JobStore>) {
    let tenant = TenantKey {
        cloud: "cloud".into(),
        project_id: "p1".into(),
    };
    let results = futures_join((0..10).map(|n| {
        let store = store.clone();
        let tenant = tenant.clone();
        async move {
            store
                .acquire_lease(&tenant, &format!("replica-{n}"), Duration::from_secs(60))
                .await
                .expect("acquire")
        }
    }))
    .await;
    assert_eq!(results.iter().flatten().count(), 1, "{results:?}");
}

async fn replicas_are_counted_while_they_beat_and_forgotten_when_they_leave(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let ttl = Duration::from_secs(60);
    assert_eq!(store.heartbeat("replica-a", ttl).await.expect("beat"), 1);
    assert_eq!(store.heartbeat("replica-b", ttl).await.expect("beat"), 2);
    assert_eq!(store.heartbeat("replica-a", ttl).await.expect("beat"), 2);
    let tenant = TenantKey {
        cloud: "cloud".into(),
        project_id: "p1".into(),
    };
    store
        .acquire_lease(&tenant, "replica-b", ttl)
        .await
        .expect("acquire")
        .expect("taken");
    store.leave("replica-b").await.expect("leave");
    assert_eq!(store.heartbeat("replica-a", ttl).await.expect("beat"), 1);
    assert!(
        store
            .acquire_lease(&tenant, "replica-a", ttl)
            .await
            .expect("acquire")
            .is_some(),
        "a replica that left holds nothing"
    );
}

/// Runs futures concurrently (each on its own task, so that they race for
/// real) and returns their outputs in order.
async fn jobs_are_counted_by_state(_db: &TestDatabase, store: Arc<dyn JobStore>) {
    assert_eq!(store.count_by_state().await.expect("count"), vec![]);
    let queued = job("p1", "snap-1", "vol-1");
    let mut running = job("p1", "snap-2", "vol-2");
    let other_tenant = job("p2", "snap-1", "vol-1");
    for job in [&queued, &running, &other_tenant] {
        store.insert(job, None).await.expect("insert");
    }
    running.start("backup-1".into(), None);
    assert!(store.update(&running, None).await.expect("update"));

    let counts = store.count_by_state().await.expect("count");

    assert_eq!(
        counts,
        vec![("queued".to_owned(), 2), ("running".to_owned(), 1)]
    );
}

/// Writes `job` (compare-and-set on its version) and follows the store's
/// version, as the job service does.
async fn write(store: &Arc<dyn JobStore>, job: &mut Job) {
    assert!(store.update(job, None).await.expect("update"), "written");
    job.version += 1;
}

/// The tenant's events after `after` that `filter` lets through.
async fn events(
    store: &Arc<dyn JobStore>,
    project: &str,
    after: i64,
    filter: EventFilter,
) -> Vec<JobEvent> {
    store
        .events_after(project, after, &filter, 1000)
        .await
        .expect("events")
}

fn kinds(events: &[JobEvent]) -> Vec<(i64, EventKind)> {
    events.iter().map(|e| (e.seq, e.kind)).collect()
}

/// A claim before a POST, as the submission makes it.
fn claim(job: &mut Job) {
    job.attempts += 1;
    job.posted_at = Some(ms(Utc::now()));
    job.next_attempt_at = Some(ms(Utc::now() + chrono::Duration::seconds(60)));
}

async fn every_change_of_a_job_is_one_event_numbered_per_tenant(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let mut backed_up = job("p1", "snap-1", "vol-1");
    store.insert(&backed_up, None).await.expect("insert");
    claim(&mut backed_up);
    write(&store, &mut backed_up).await;
    // A POST that got no answer is retried once its outcome is settled: at
    // the very time the claim set.
    let transient = Problem::new(ProblemKind::UpstreamUnavailable, "Cinder did not answer");
    let settled = backed_up.next_attempt_at.expect("the claim's time");
    backed_up.retry_at(transient.clone(), settled);
    write(&store, &mut backed_up).await;
    // Showing the waiting job, and a write at a version the store no
    // longer has, are no events.
    store.mark_shown(backed_up.id).await.expect("shown");
    let mut stale = backed_up.clone();
    stale.version -= 1;
    stale.cancel();
    assert!(!store.update(&stale, None).await.expect("update"));
    claim(&mut backed_up);
    write(&store, &mut backed_up).await;
    backed_up.start("backup-1".into(), None);
    let expected = ms(Utc::now() + chrono::Duration::minutes(5));
    backed_up.expected_completion_at = Some(expected);
    write(&store, &mut backed_up).await;
    store.mark_shown(backed_up.id).await.expect("shown");
    backed_up.expected_completion_at = None;
    write(&store, &mut backed_up).await;
    backed_up.succeed();
    write(&store, &mut backed_up).await;
    // Another tenant numbers its own events; recorded claimed, as a create does.
    let mut elsewhere = job("p2", "snap-1", "vol-1");
    claim(&mut elsewhere);
    store.insert(&elsewhere, None).await.expect("insert");
    let mut cancelled = job("p1", "snap-2", "vol-2");
    store.insert(&cancelled, None).await.expect("insert");
    cancelled.cancel();
    write(&store, &mut cancelled).await;
    let mut refused = job("p1", "snap-3", "vol-3");
    claim(&mut refused);
    store.insert(&refused, None).await.expect("insert");
    assert!(store.delete(refused.id, 0, None).await.expect("delete"));

    let all = events(&store, "p1", 0, EventFilter::default()).await;

    use EventKind::*;
    assert_eq!(
        kinds(&all),
        [
            (1, Created),
            (2, Submitted),
            (3, RetryScheduled),
            (4, Submitted),
            (5, Running),
            (6, EstimateChanged),
            (7, Succeeded),
            (8, Created),
            (9, Cancelled),
            (10, Created),
            (11, Submitted),
            (12, Removed),
        ]
    );
    let retry = &all[2];
    assert_eq!(retry.job_id, backed_up.id);
    assert_eq!(retry.state, JobState::Queued);
    assert_eq!(retry.error, Some(transient));
    assert!(retry.next_attempt_at.is_some());
    let running = &all[4];
    assert_eq!(running.backup_id.as_deref(), Some("backup-1"));
    assert_eq!(running.snapshot_id, "snap-1");
    assert_eq!(running.expected_completion_at, Some(expected));
    assert_eq!(all[5].state, JobState::Running);
    assert_eq!(all[5].expected_completion_at, None);
    assert_eq!(all[6].state, JobState::Succeeded);
    assert_eq!(all[6].occurred_at, backed_up.updated_at);
    assert_eq!(all[11].job_id, refused.id);
    assert_eq!(
        kinds(&events(&store, "p2", 0, EventFilter::default()).await),
        [(1, Created), (2, Submitted)]
    );
    assert_eq!(
        kinds(&events(&store, "p1", 9, EventFilter::default()).await),
        [(10, Created), (11, Submitted), (12, Removed)]
    );
    let of_job = EventFilter {
        job_id: Some(cancelled.id),
        snapshot_id: None,
    };
    assert_eq!(
        kinds(&events(&store, "p1", 0, of_job).await),
        [(8, Created), (9, Cancelled)]
    );
    let of_snapshot = EventFilter {
        job_id: None,
        snapshot_id: Some("snap-3".into()),
    };
    assert_eq!(
        kinds(&events(&store, "p1", 0, of_snapshot).await),
        [(10, Created), (11, Submitted), (12, Removed)]
    );
    assert_eq!(
        store
            .events_after("p1", 0, &EventFilter::default(), 2)
            .await
            .expect("events")
            .len(),
        2,
        "at most the limit"
    );
    let range = |last, purged_through| EventRange {
        last,
        purged_through,
    };
    assert_eq!(store.event_range("p1").await.expect("range"), range(12, 0));
    assert_eq!(store.event_range("p2").await.expect("range"), range(2, 0));
    assert_eq!(
        store.event_range("nobody").await.expect("range"),
        range(0, 0)
    );
}

async fn events_are_purged_by_age_and_their_numbers_never_repeat(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    for n in 0..5 {
        let mut old = job("p1", &format!("snap-{n}"), "vol-1");
        old.created_at = ms(Utc::now() - chrono::Duration::days(10));
        store.insert(&old, None).await.expect("insert");
    }
    let recent = job("p1", "snap-r", "vol-1");
    store.insert(&recent, None).await.expect("insert");
    // Times need not follow numbers (several replicas' clocks): an old
    // event after a recent one.
    let mut late = job("p1", "snap-l", "vol-1");
    late.created_at = ms(Utc::now() - chrono::Duration::days(10));
    store.insert(&late, None).await.expect("insert");
    let cutoff = Utc::now() - chrono::Duration::days(7);

    assert_eq!(store.purge_events(cutoff, 4).await.expect("purge"), 4);
    assert_eq!(store.purge_events(cutoff, 4).await.expect("purge"), 2);
    assert_eq!(store.purge_events(cutoff, 4).await.expect("purge"), 0);
    // Retention of finished jobs deletes jobs, not events.
    let mut ended = job("p1", "snap-e", "vol-1");
    ended.succeed();
    ended.finished_at = Some(ms(Utc::now() - chrono::Duration::days(40)));
    store.insert(&ended, None).await.expect("insert");
    store
        .purge_finished(Utc::now() - chrono::Duration::days(30), 10)
        .await
        .expect("purge");
    let next = job("p1", "snap-n", "vol-1");
    store.insert(&next, None).await.expect("insert");

    let left = events(&store, "p1", 0, EventFilter::default()).await;
    use EventKind::*;
    assert_eq!(kinds(&left), [(6, Created), (8, Created), (9, Created)]);
    // Event 7 is gone while 6 is kept: a client that saw 6 has a gap.
    let range = store.event_range("p1").await.expect("range");
    assert_eq!(
        range,
        EventRange {
            last: 9,
            purged_through: 7
        }
    );
    assert!(!range.resumable_after(6) && range.resumable_after(7));
    assert_eq!(left[0].job_id, recent.id);
    assert_eq!(left[2].job_id, next.id);
}

async fn concurrent_writers_number_a_tenants_events_without_gaps(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let jobs: Vec<Job> = (0..24)
        .map(|n| job("p1", &format!("snap-{n}"), "vol-1"))
        .collect();
    let inserts = jobs.iter().cloned().map(|j| {
        let store = store.clone();
        async move { store.insert(&j, None).await.expect("insert") }
    });
    futures_join(inserts).await;

    let all = events(&store, "p1", 0, EventFilter::default()).await;

    let numbers: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(numbers, (1..=24).collect::<Vec<i64>>());
    let mut ids: Vec<JobId> = all.iter().map(|e| e.job_id).collect();
    ids.sort_by_key(|id| id.to_string());
    let mut expected: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(ids, expected, "one created event per job");
}

async fn futures_join<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

/// PostgreSQL announces every change of a job (its creation, each new
/// version, its removal) with the job and its tenant, which is how another
/// replica wakes that job's long polls and that tenant's event streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_announces_each_change_with_the_job_and_its_tenant() {
    let db = TestDatabase::postgres().await;
    let store = db.store().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    store.watch_changes(Arc::new(move |change| {
        let _ = tx.send(change);
    }));
    // The first announcement says the subscription is made (every waiter
    // looks again): only then are changes sure to be heard.
    let subscribed = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await;
    assert_eq!(subscribed.ok().flatten(), Some(None), "subscribed");

    let mut created = job("p1", "snap-1", "vol-1");
    store.insert(&created, None).await.expect("insert");
    created.cancel();
    write(&store, &mut created).await;
    let refused = job("p2", "snap-1", "vol-1");
    store.insert(&refused, None).await.expect("insert");
    assert!(store.delete(refused.id, 0, None).await.expect("delete"));

    // The channel is the database's: tests in other schemas are heard too.
    let ours = [created.id, refused.id];
    let mut heard = Vec::new();
    while heard.len() < 4 {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(Some(change))) if !ours.contains(&change.job_id) => {}
            Ok(Some(Some(change))) => heard.push((change.job_id, change.project_id)),
            other => panic!("no announcement: {other:?} after {heard:?}"),
        }
    }
    let p = |s: &str| Some(s.to_owned());
    assert_eq!(
        heard,
        [
            (created.id, p("p1")),
            (created.id, p("p1")),
            (refused.id, p("p2")),
            (refused.id, p("p2")),
        ]
    );
}

/// A subscription of `project`, its cursor at `cursor`.
fn subscription(project: &str, cursor: i64) -> backup_gateway::webhooks::model::Subscription {
    backup_gateway::webhooks::model::Subscription {
        id: uuid::Uuid::now_v7(),
        project_id: project.into(),
        url: "https://hooks.example.com/h".into(),
        description: "d".into(),
        event_types: Some(vec!["job.succeeded".into()]),
        job_id: None,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        previous_secret: None,
        previous_secret_until: None,
        cursor,
        closed: false,
        created_at: backup_gateway::jobs::model::now(),
        held_until: None,
    }
}

fn delivery(
    s: &backup_gateway::webhooks::model::Subscription,
    seq: i64,
) -> backup_gateway::webhooks::model::Delivery {
    backup_gateway::webhooks::model::Delivery::new(
        s.id,
        seq,
        "job.succeeded",
        JobId::new(),
        format!("{{\"seq\":{seq}}}"),
    )
}

async fn a_webhooks_deliveries_are_recorded_once_whoever_records_them(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    let hooks = store.webhooks();
    let s = subscription("p1", 0);
    hooks.insert_subscription(&s).await.expect("insert");
    assert_eq!(
        hooks.subscription("p1", s.id).await.expect("read"),
        Some(s.clone())
    );
    assert_eq!(
        hooks.subscription("p2", s.id).await.expect("read"),
        None,
        "another tenant's"
    );

    // Two replicas record the same events from the same cursor: one wins.
    let batch = [delivery(&s, 1), delivery(&s, 2)];
    let other = [delivery(&s, 1), delivery(&s, 2)];
    let (first, second) = tokio::join!(
        hooks.record_deliveries(s.id, 0, 2, false, &batch),
        hooks.record_deliveries(s.id, 0, 2, false, &other),
    );
    assert_eq!(
        [first.expect("record"), second.expect("record")]
            .iter()
            .filter(|won| **won)
            .count(),
        1
    );
    let recorded = hooks.deliveries(s.id, None, 10, None).await.expect("list");
    assert_eq!(
        recorded.iter().map(|d| d.event_seq).collect::<Vec<_>>(),
        [2, 1],
        "newest first"
    );
    assert_eq!(
        hooks
            .subscription("p1", s.id)
            .await
            .unwrap()
            .unwrap()
            .cursor,
        2
    );
    assert!(
        !hooks
            .record_deliveries(s.id, 0, 3, false, &[])
            .await
            .unwrap(),
        "a stale cursor"
    );

    // Deleting it takes its deliveries.
    assert!(hooks.delete_subscription("p1", s.id).await.unwrap());
    assert!(
        hooks
            .deliveries(s.id, None, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!hooks.delete_subscription("p1", s.id).await.unwrap());
}

async fn a_due_delivery_is_claimed_by_one_holder_and_its_attempts_recorded(
    _db: &TestDatabase,
    store: Arc<dyn JobStore>,
) {
    use backup_gateway::webhooks::model::{AttemptOutcome, DeliveryStatus};
    let hooks = store.webhooks();
    let s = subscription("p1", 0);
    hooks.insert_subscription(&s).await.unwrap();
    let recorded = [delivery(&s, 1), delivery(&s, 2), delivery(&s, 3)];
    hooks
        .record_deliveries(s.id, 0, 3, false, &recorded)
        .await
        .unwrap();
    let now = backup_gateway::jobs::model::now();
    let until = now + chrono::Duration::seconds(60);
    let claim = |holder: &'static str, at, until| hooks.claim_due(holder, at, until, 10, 2);

    // Two holders at once: one gets the subscription, with its first two
    // due deliveries in event order.
    let (a, b) = tokio::join!(
        claim("replica-a", now, until),
        claim("replica-b", now, until)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 1, "one holder");
    let (holder, batch) = if a.is_empty() {
        ("replica-b", &b[0])
    } else {
        ("replica-a", &a[0])
    };
    assert_eq!(batch.subscription.url, s.url);
    let seqs: Vec<i64> = batch.deliveries.iter().map(|d| d.event_seq).collect();
    assert_eq!(seqs, [1, 2]);
    assert!(
        claim("replica-c", now, until).await.unwrap().is_empty(),
        "being delivered to"
    );

    // Only the holder records an attempt: a failed one makes it due later.
    let failed = |at| AttemptOutcome {
        status: DeliveryStatus::Pending,
        at,
        next_attempt_at: Some(at + chrono::Duration::seconds(5)),
        status_code: Some(503),
        error: Some("the receiver answered 503".into()),
    };
    assert!(
        !hooks
            .record_attempt(batch.deliveries[0].id, "replica-c", &failed(now), now)
            .await
            .unwrap()
    );
    let untouched = hooks.deliveries(s.id, None, 10, None).await.unwrap();
    assert!(
        untouched.iter().all(|d| d.attempts == 0),
        "not the holder's: not recorded"
    );
    assert!(
        hooks
            .record_attempt(batch.deliveries[0].id, holder, &failed(now), now)
            .await
            .unwrap()
    );
    hooks.unclaim(s.id, holder).await.unwrap();

    // Free again: the next claim starts after the one not due yet.
    let next = claim("replica-c", now, until).await.unwrap();
    let seqs: Vec<i64> = next[0].deliveries.iter().map(|d| d.event_seq).collect();
    assert_eq!(seqs, [2, 3], "a retry does not hold up the events after it");
    let later = now + chrono::Duration::seconds(5);
    let ok = AttemptOutcome {
        status: DeliveryStatus::Succeeded,
        at: later,
        next_attempt_at: None,
        status_code: Some(204),
        error: None,
    };
    for d in &next[0].deliveries {
        assert!(
            hooks
                .record_attempt(d.id, "replica-c", &ok, now)
                .await
                .unwrap()
        );
    }
    // A claim that ran out may be taken over; an earlier life's is let go.
    let after_claim = until + chrono::Duration::milliseconds(1);
    let taken = claim(
        "replica-d",
        after_claim,
        after_claim + chrono::Duration::seconds(60),
    )
    .await
    .unwrap();
    assert_eq!(taken[0].deliveries.len(), 1, "the retry, due by then");
    assert_eq!(taken[0].deliveries[0].attempts, 1);
    assert_eq!(taken[0].deliveries[0].last_status_code, Some(503));
    let too_late = after_claim + chrono::Duration::seconds(61);
    assert!(
        !hooks
            .record_attempt(taken[0].deliveries[0].id, "replica-d", &ok, too_late)
            .await
            .unwrap(),
        "not under a claim that ran out"
    );
    assert_eq!(hooks.unclaim_all("replica-d").await.unwrap(), 1);
    let again = claim("replica-e", after_claim, after_claim).await.unwrap();
    assert!(
        hooks
            .record_attempt(again[0].deliveries[0].id, "replica-e", &ok, now)
            .await
            .unwrap()
    );
    let done = hooks
        .deliveries(s.id, Some(DeliveryStatus::Succeeded), 10, None)
        .await
        .unwrap();
    assert_eq!(done.len(), 3);
    assert_eq!(done.iter().find(|d| d.event_seq == 1).unwrap().attempts, 2);
    hooks.unclaim(s.id, "replica-e").await.unwrap();
    assert!(
        claim("replica-f", after_claim, after_claim)
            .await
            .unwrap()
            .is_empty(),
        "nothing due"
    );

    // Ended deliveries go with retention.
    let purged = hooks
        .purge_deliveries(
            backup_gateway::jobs::model::now() + chrono::Duration::seconds(10),
            100,
        )
        .await
        .unwrap();
    assert_eq!(purged, 3);
}

async fn a_held_callback_waits_for_its_release(_db: &TestDatabase, store: Arc<dyn JobStore>) {
    let hooks = store.webhooks();
    let now = backup_gateway::jobs::model::now();
    let mut s = subscription("p1", 0);
    s.held_until = Some(now + chrono::Duration::seconds(60));
    hooks.insert_subscription(&s).await.unwrap();
    hooks
        .record_deliveries(s.id, 0, 1, false, &[delivery(&s, 1)])
        .await
        .unwrap();
    let until = now + chrono::Duration::seconds(30);
    assert!(
        hooks
            .claim_due("r", now, until, 10, 10)
            .await
            .unwrap()
            .is_empty(),
        "held"
    );

    let at = now + chrono::Duration::seconds(1);
    let released = hooks
        .release("p1", s.id, at)
        .await
        .unwrap()
        .expect("the callback");
    assert_eq!(released.held_until, Some(at));
    assert!(
        hooks
            .claim_due("r", now, until, 10, 10)
            .await
            .unwrap()
            .is_empty(),
        "held until then"
    );
    assert_eq!(
        hooks.claim_due("r", at, until, 10, 10).await.unwrap().len(),
        1,
        "due once released"
    );
    assert!(
        hooks.release("p2", s.id, at).await.unwrap().is_none(),
        "another tenant's"
    );
}
