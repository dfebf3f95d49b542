//! Several replicas on one PostgreSQL store, in this process: creates of
//! the same snapshot racing on two replicas, one Idempotency-Key sent to
//! both, a long poll on one replica woken by the other's change; and the
//! PostgreSQL store's connection: TLS, migrations, errors. (The replicas
//! as processes, one of them killed, are in `takeover`.)

use std::time::Duration;

use backup_gateway::store::{self, StoreOptions};
use openstack_sim::{Fault, FaultKind, Op};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    databases::{TestDatabase, postgres_server},
    helpers::{Answer, Gateway, PROJECT_A, TestApp, TestCloud},
};

/// Two replicas on one fresh PostgreSQL schema in front of one simulator.
/// `worker_loops` says which run their worker on their own.
struct Replicas {
    a: Gateway,
    b: Gateway,
    cloud: TestCloud,
    _db: TestDatabase,
}

impl Replicas {
    async fn start(backup_duration: Duration, worker_loops: [bool; 2]) -> Replicas {
        let db = TestDatabase::postgres().await;
        let cloud = TestCloud::start(TestApp::sim_config(backup_duration)).await;
        let mut flags = cloud.flags_on(db.url());
        flags.extend(["--poll-interval", "100ms", "--lease-ttl", "2s"]);
        let a = Gateway::start_with(&flags, worker_loops[0]).await;
        let b = Gateway::start_with(&flags, worker_loops[1]).await;
        Replicas {
            a,
            b,
            cloud,
            _db: db,
        }
    }
}

/// A UUID-shaped id (Cinder's volume ids are UUIDs), `n`-th of a family.
fn uuid_like(family: u16, n: usize) -> String {
    format!("{family:04x}0000-0000-4000-8000-{n:012x}")
}

fn job_id(answer: &Answer) -> Option<String> {
    match answer.status {
        StatusCode::ACCEPTED => answer.body["id"].as_str().map(str::to_owned),
        StatusCode::CONFLICT => answer.body["job_id"].as_str().map(str::to_owned),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_create_on_two_replicas_at_once_makes_one_job_per_snapshot() {
    // Arrange: 50 snapshots of their own volumes.
    let replicas = Replicas::start(Duration::from_secs(3600), [false, false]).await;
    let snapshots: Vec<String> = (0..50).map(|n| uuid_like(0x5ace, n)).collect();
    for (n, snapshot) in snapshots.iter().enumerate() {
        replicas
            .cloud
            .add_snapshot(PROJECT_A, &uuid_like(0x7ace, n), snapshot);
    }

    for snapshot in &snapshots {
        // Act: the same create to both replicas at once.
        let (on_a, on_b) = tokio::join!(
            replicas.a.create_backup("tenant-a", snapshot, json!({})),
            replicas.b.create_backup("tenant-a", snapshot, json!({})),
        );

        // Assert: one 202 and one 409 naming the same job; one job and one
        // backup of the snapshot.
        let mut statuses = [on_a.status, on_b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::ACCEPTED, StatusCode::CONFLICT],
            "{snapshot}: {} / {}",
            on_a.text,
            on_b.text
        );
        assert_eq!(
            job_id(&on_a),
            job_id(&on_b),
            "{snapshot}: both name one job"
        );
        let listed = replicas
            .a
            .get("tenant-a", &format!("/jobs?snapshot_id={snapshot}"))
            .await;
        assert_eq!(
            listed.body["jobs"].as_array().map(Vec::len),
            Some(1),
            "{}",
            listed.text
        );
        let backups: Vec<Value> = replicas
            .cloud
            .sim
            .backups(PROJECT_A)
            .into_iter()
            .filter(|b| b["snapshot_id"] == snapshot.as_str())
            .collect();
        assert_eq!(backups.len(), 1, "{snapshot}: {backups:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_sent_to_two_replicas_at_once_makes_one_job() {
    let replicas = Replicas::start(Duration::from_secs(3600), [false, false]).await;
    for n in 0..20 {
        let snapshot = uuid_like(0x5eed, n);
        replicas
            .cloud
            .add_snapshot(PROJECT_A, &uuid_like(0x7eed, n), &snapshot);
        let key = format!("one-key-{n}");

        let (on_a, on_b) = tokio::join!(
            replicas
                .a
                .create_with_key("tenant-a", &snapshot, json!({"name": "keyed"}), &key),
            replicas
                .b
                .create_with_key("tenant-a", &snapshot, json!({"name": "keyed"}), &key),
        );

        // Each answer is the job (first or replayed) or "key in use" while
        // the first request is still being answered: never a second job.
        let ids: Vec<String> = [&on_a, &on_b]
            .into_iter()
            .filter_map(|answer| match answer.status {
                StatusCode::ACCEPTED => answer.body["id"].as_str().map(str::to_owned),
                StatusCode::CONFLICT => {
                    answer.assert_problem(409, "idempotency-key-in-use");
                    None
                }
                other => panic!("unexpected {other}: {}", answer.text),
            })
            .collect();
        assert!(!ids.is_empty(), "one of them is answered the job");
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        let listed = replicas
            .b
            .get("tenant-a", &format!("/jobs?snapshot_id={snapshot}"))
            .await;
        let jobs = listed.body["jobs"].as_array().cloned().unwrap_or_default();
        assert_eq!(jobs.len(), 1, "{}", listed.text);
        assert_eq!(jobs[0]["id"], ids[0].as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_replica_wakes_when_another_replica_finishes_the_job() {
    // Arrange: only replica b runs a worker, so only b can conclude the
    // job; the caller long-polls replica a.
    let replicas = Replicas::start(Duration::from_secs(1), [false, true]).await;
    let job = replicas
        .a
        .create_ok("tenant-a", &crate::helpers::snapshot('a', 1))
        .await;
    assert_eq!(job["state"], "running", "{job}");
    let id = job["id"].as_str().expect("id");

    // Act: a wait far longer than the backup takes.
    let waited = replicas
        .a
        .request(
            Method::GET,
            &format!("/jobs/{id}?wait=60"),
            Some("tenant-a"),
        )
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .expect("answered");
    let waited = Answer::read(waited).await;

    // Assert: woken by b's write (a's own copy would still say `running`
    // had the poll run out its time instead).
    assert_eq!(waited.status, StatusCode::OK, "{}", waited.text);
    assert_eq!(waited.body["state"], "succeeded", "{}", waited.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_the_store_and_the_tenants_this_replica_works() {
    let replicas = Replicas::start(Duration::from_secs(3600), [false, false]).await;
    let idle = replicas.a.get("tenant-a", "/readyz").await;
    assert_eq!(idle.body["store"], "postgres", "{}", idle.text);
    assert_eq!(
        idle.body["leased_tenants"],
        json!([]),
        "nothing to work yet"
    );
    assert!(idle.body["replica"].as_str().is_some_and(|r| !r.is_empty()));
    assert_ne!(
        idle.body["replica"],
        replicas.b.get("tenant-a", "/readyz").await.body["replica"],
        "each replica has a name of its own"
    );

    replicas
        .a
        .create_ok("tenant-a", &crate::helpers::snapshot('a', 1))
        .await;
    replicas
        .a
        .create_ok("tenant-b", &crate::helpers::snapshot('b', 1))
        .await;
    // a starts alone and takes both; once b is seen alive, a gives one
    // back and b takes it.
    replicas.a.cycle().await;
    replicas.b.cycle().await;
    replicas.a.cycle().await;
    replicas.b.cycle().await;

    // Two tenants with work, two replicas: one each.
    let on_a = replicas.a.get("tenant-a", "/readyz").await.body;
    let on_b = replicas.b.get("tenant-a", "/readyz").await.body;
    let mut all: Vec<Value> = [&on_a, &on_b]
        .iter()
        .flat_map(|r| r["leased_tenants"].as_array().cloned().unwrap_or_default())
        .collect();
    all.sort_by_key(|t| t.to_string());
    assert_eq!(
        all,
        vec![json!("tenant-a"), json!("tenant-b")],
        "{on_a} {on_b}"
    );
    assert_eq!(
        on_a["leased_tenants"].as_array().map(Vec::len),
        Some(1),
        "{on_a}"
    );
}

#[tokio::test]
async fn a_postgresql_store_that_cannot_be_reached_is_named_without_its_password() {
    // Arrange: nothing listens on port 1.
    let cloud = TestCloud::start(TestApp::sim_config(Duration::from_secs(3600))).await;
    let url = "postgres://gateway:s3cret-password@127.0.0.1:1/jobs";
    let mut flags = cloud.flags_on(url);
    flags.extend(crate::helpers::test_jwt_flags());

    // Act
    let built = backup_gateway::Application::build(
        crate::helpers::parse_config(&flags).expect("flags parse"),
    )
    .await;

    // Assert
    let error = format!("{:#}", built.err().expect("the gateway does not start"));
    assert!(error.contains("--database-url"), "{error}");
    assert!(
        error.contains("postgres://gateway:***@127.0.0.1:1/jobs"),
        "{error}"
    );
    assert!(!error.contains("s3cret-password"), "{error}");
    assert!(error.contains("refused"), "says why: {error}");

    // A database the server does not have is named in the server's words.
    let server = crate::databases::postgres_server();
    let missing = match server.rsplit_once('/') {
        Some((host, _)) => format!("{host}/no_such_database"),
        None => panic!("{server} names no database"),
    };
    let error = store::connect(&StoreOptions::new(&missing))
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .expect("refused");
    assert!(
        error.contains("\"no_such_database\" does not exist"),
        "{error}"
    );
    assert!(!error.contains(" at line "), "{error}");
}

/// The create's claim, written before its POST, keeps the other
/// replica's worker from posting the job while Cinder is slow to answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_on_one_replica_is_never_posted_again_by_the_others_worker() {
    // Arrange: Cinder takes 1.5 s to accept the next backup.
    let replicas = Replicas::start(Duration::from_secs(3600), [false, false]).await;
    replicas.a.get("tenant-a", "/snapshots").await;
    replicas.cloud.sim.inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::Delay(Duration::from_millis(1500)),
        times: 1,
    });

    // Act: while replica a waits for Cinder, replica b's worker cycles.
    let snapshot = crate::helpers::snapshot('a', 1);
    let create = replicas.a.create_backup("tenant-a", &snapshot, json!({}));
    tokio::pin!(create);
    let created = loop {
        tokio::select! {
            answer = &mut create => break answer,
            () = replicas.b.cycle() => {}
        }
    };
    replicas.b.cycle().await;

    // Assert: one POST, one backup, the caller told it runs.
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    assert_eq!(created.body["state"], "running", "{}", created.text);
    assert_eq!(replicas.cloud.sim.calls(Op::BackupCreate), 1);
    assert_eq!(replicas.cloud.sim.backups(PROJECT_A).len(), 1);
}

#[tokio::test]
async fn the_postgresql_store_speaks_tls_when_the_url_asks_and_checks_the_certificate() {
    // Arrange: the local server offers TLS with a self-signed certificate.
    let db = TestDatabase::postgres().await;
    let name = format!("bg-tls-{}", uuid::Uuid::new_v4().simple());

    // Act: `sslmode=require` encrypts without checking the certificate;
    // `verify-full` checks it against the known roots.
    let encrypted = store::connect(&StoreOptions::new(&format!(
        "{}&sslmode=require&application_name={name}",
        db.url()
    )))
    .await
    .expect("opens over TLS");
    encrypted.ping().await.expect("answers");
    let verified = store::connect(&StoreOptions::new(&format!(
        "{}&sslmode=verify-full",
        db.url()
    )))
    .await;

    // Assert: the server sees the store's connections encrypted, and a
    // certificate no root vouches for is refused.
    let admin = sqlx::PgPool::connect(&postgres_server())
        .await
        .expect("server");
    let over_tls: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name = $1 AND s.ssl",
    )
    .bind(&name)
    .fetch_one(&admin)
    .await
    .expect("query");
    assert!(over_tls >= 1, "no TLS connection named {name}");
    let refused = verified.err().map(|e| format!("{e:#}"));
    assert!(
        refused.is_some(),
        "a self-signed certificate passed verify-full"
    );
}

/// A replica of the version before a migration keeps starting once a
/// newer replica has applied it (a rolling upgrade, a rollback).
#[tokio::test]
async fn a_store_migrated_further_by_a_newer_version_still_opens() {
    for db in [TestDatabase::sqlite(), TestDatabase::postgres().await] {
        drop(db.store().await);
        let checksum = match db {
            TestDatabase::Sqlite { .. } => "X'00'",
            TestDatabase::Postgres { .. } => "decode('00', 'hex')",
        };
        db.execute(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (29991231000001, 'a later version', TRUE, {checksum}, 0)"
        ))
        .await;

        let reopened = store::connect(&StoreOptions::new(db.url())).await;

        assert!(reopened.is_ok(), "{}: {:?}", db.url(), reopened.err());
    }
}

#[tokio::test]
async fn backup_gateway_migrate_brings_a_postgresql_schema_up_to_date_and_may_run_again() {
    let db = TestDatabase::postgres().await;
    let TestDatabase::Postgres { schema, .. } = &db else {
        unreachable!("a PostgreSQL database");
    };
    for run in 0..2 {
        let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_backup-gateway"))
            .args(["migrate", "--database-url", db.url()])
            .env_remove("BACKUP_GATEWAY_DATABASE_URL")
            .output()
            .expect("migrate runs");
        assert!(
            migrated.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&migrated.stderr)
        );
    }
    let admin = sqlx::PgPool::connect(&postgres_server())
        .await
        .expect("server");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(&admin)
    .await
    .expect("query");
    assert_eq!(
        tables,
        [
            "_sqlx_migrations",
            "gateway_replicas",
            "idempotency_keys",
            "job_event_counters",
            "job_events",
            "jobs",
            "tenant_leases",
            "webhook_deliveries",
            "webhook_subscriptions"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_gracefully_gives_its_tenants_to_another_at_once() {
    // Arrange: leases of an hour, so that only a release (not an expiry)
    // can hand the tenant over within this test; a holds tenant-a.
    let db = TestDatabase::postgres().await;
    let cloud = TestCloud::start(TestApp::sim_config(Duration::from_secs(3600))).await;
    let mut flags = cloud.flags_on(db.url());
    flags.extend(["--lease-ttl", "1h"]);
    let mut a = Gateway::start_with(&flags, false).await;
    let b = Gateway::start_with(&flags, false).await;
    a.create_ok("tenant-a", &crate::helpers::snapshot('a', 1))
        .await;
    a.cycle().await;
    let leased = |ready: Value| ready["leased_tenants"].clone();
    assert_eq!(
        leased(a.get("tenant-a", "/readyz").await.body),
        json!(["tenant-a"])
    );
    b.cycle().await;
    assert_eq!(
        leased(b.get("tenant-a", "/readyz").await.body),
        json!([]),
        "a holds it"
    );

    // Act: a stops as on SIGTERM.
    a.stop().await;
    b.cycle().await;

    // Assert
    assert_eq!(
        leased(b.get("tenant-a", "/readyz").await.body),
        json!(["tenant-a"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_written_by_one_replica_reaches_a_stream_on_another() {
    // Only replica b runs a worker: the job's every change is b's.
    let replicas = Replicas::start(Duration::from_secs(1), [false, true]).await;
    let mut stream =
        crate::events::EventStream::open_ok(&replicas.a, "tenant-a", "/events", None).await;

    let job = replicas
        .b
        .create_ok("tenant-a", &crate::helpers::snapshot('a', 1))
        .await;
    let id = job["id"].as_str().expect("id");
    let seen = stream.take(4).await;

    let names: Vec<&str> = seen.iter().map(|(_, name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "job.created",
            "job.submitted",
            "job.running",
            "job.succeeded"
        ]
    );
    assert!(seen.iter().all(|(_, _, job_id)| job_id == id), "{seen:?}");
    let numbers: Vec<&str> = seen.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(numbers, ["1", "2", "3", "4"]);
}
