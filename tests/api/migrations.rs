//! Upgrades: a store written by the version before the events' second
//! migration (`events_and_estimates`) opens with its jobs, its events and
//! their numbers intact, knows which events were purged, and records the
//! new kinds of events.

use std::path::Path;

use backup_gateway::{
    jobs::{
        events::{EventFilter, EventKind, EventRange},
        model::{Job, JobState},
    },
    store::{self, StoreOptions},
};
use chrono::Utc;
use sqlx::migrate::Migrator;

use crate::databases::TestDatabase;

/// The last migration of the version before.
const BEFORE: &str = "20261204000001";

/// Applies `kind`'s migrations up to [`BEFORE`] to `url`'s database.
async fn migrate_as_before(kind: &str, url: &str) {
    let all = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(kind);
    let earlier = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(&all).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.as_str() <= BEFORE || name.starts_with(BEFORE) {
            std::fs::copy(&path, earlier.path().join(&name)).expect("copy");
        }
    }
    let migrator = Migrator::new(earlier.path())
        .await
        .expect("migrations read");
    match kind {
        "sqlite" => {
            let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("url");
            let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
                .await
                .expect("open");
            migrator.run(&pool).await.expect("migrate as before");
            pool.close().await;
        }
        _ => {
            let pool = sqlx::PgPool::connect(url).await.expect("open");
            migrator.run(&pool).await.expect("migrate as before");
            pool.close().await;
        }
    }
}

/// Three jobs of tenant p1 as the version before wrote them (its triggers
/// number their `created` events 1, 2, 3), then event 2 purged.
fn jobs_as_before(kind: &str) -> String {
    let job = |n: u32| match kind {
        "sqlite" => format!(
            "INSERT INTO jobs (id, project_id, cloud, snapshot_id, volume_id, options, state, created_at, updated_at) \
             VALUES ('0193a0c4-7b3e-7f00-8000-00000000000{n}', 'p1', 'c1', 'snap-{n}', 'vol-{n}', '{{}}', 'queued', 1000, 1000);"
        ),
        _ => format!(
            "INSERT INTO jobs (id, project_id, cloud, snapshot_id, volume_id, options, state, created_at, updated_at) \
             VALUES ('0193a0c4-7b3e-7f00-8000-00000000000{n}', 'p1', 'c1', 'snap-{n}', 'vol-{n}', '{{}}', 'queued', now(), now());"
        ),
    };
    format!(
        "{}{}{}DELETE FROM job_events WHERE seq = 2;",
        job(1),
        job(2),
        job(3)
    )
}

async fn upgrade(db: TestDatabase, kind: &str) {
    migrate_as_before(kind, db.url()).await;
    db.execute(&jobs_as_before(kind)).await;

    let store = store::connect(&StoreOptions::new(db.url()))
        .await
        .expect("the store opens, migrated");

    // The jobs and the kept events read back, numbered as before.
    let old = "0193a0c4-7b3e-7f00-8000-000000000001".parse().expect("id");
    let job = store.get(old).await.expect("get").expect("the old job");
    assert_eq!((job.size_gib, job.expected_completion_at), (None, None));
    let kept = store
        .events_after("p1", 0, &EventFilter::default(), 100)
        .await
        .expect("events");
    let numbered: Vec<(i64, EventKind)> = kept.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(numbered, [(1, EventKind::Created), (3, EventKind::Created)]);
    assert_eq!(
        store.event_range("p1").await.expect("range"),
        EventRange {
            last: 3,
            purged_through: 2
        },
        "event 2 is known to be gone"
    );

    // The new rules number on from there, with the new fields.
    let mut new = Job::new(
        "p1".into(),
        "c1".into(),
        "snap-new".into(),
        "vol-new".into(),
        Default::default(),
    );
    new.size_gib = Some(3);
    store.insert(&new, None).await.expect("insert");
    new.start("backup-1".into(), None);
    new.expected_completion_at = Some(new.updated_at + chrono::Duration::minutes(2));
    assert!(store.update(&new, None).await.expect("update"));
    new.version += 1;
    new.expected_completion_at = None;
    new.updated_at = backup_gateway::jobs::model::now();
    assert!(store.update(&new, None).await.expect("update"));
    let later = store
        .events_after("p1", 3, &EventFilter::default(), 100)
        .await
        .expect("events");
    let kinds: Vec<(i64, EventKind)> = later.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (4, EventKind::Created),
            (5, EventKind::Running),
            (6, EventKind::EstimateChanged)
        ]
    );
    assert!(later[1].expected_completion_at.is_some());
    assert_eq!(later[1].state, JobState::Running);
    assert_eq!(
        store.get(new.id).await.expect("get").map(|j| j.size_gib),
        Some(Some(3))
    );
    // The purge still goes by age, now with its edge.
    let purged = store
        .purge_events(Utc::now() + chrono::Duration::days(1), 100)
        .await
        .expect("purge");
    assert_eq!(purged, 5);
    assert_eq!(
        store.event_range("p1").await.expect("range").purged_through,
        6
    );
}

#[tokio::test]
async fn a_sqlite_store_of_the_version_before_upgrades_with_its_events() {
    upgrade(TestDatabase::sqlite(), "sqlite").await;
}

#[tokio::test]
async fn a_postgresql_store_of_the_version_before_upgrades_with_its_events() {
    upgrade(TestDatabase::postgres().await, "postgres").await;
}
