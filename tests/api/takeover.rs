//! Two replicas of the real gateway binary on one PostgreSQL store, in
//! front of one simulator, with creates of several tenants spread over both
//! replicas' APIs. Midway one replica is killed with SIGKILL and never
//! comes back: the other takes over its tenants once their leases expire,
//! and every job still ends with exactly one backup (checked against the
//! simulator's records, as in the chaos test).
//!
//! The size comes from the environment, so that `bench/replicas` can scale
//! it: `REPLICAS_CREATES` (60), `REPLICAS_TENANTS` (4),
//! `REPLICAS_CONCURRENCY` (8), `REPLICAS_BACKUP_MS` (2000, how long a
//! simulated backup takes), `REPLICAS_LEASE_TTL` (`3s`),
//! `REPLICAS_DRAIN_SECS` (180), `REPLICAS_SEED` (random; printed). One
//! summary line goes to stdout.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use openstack_sim::{Sim, SimConfig};
use serde_json::Value;

use crate::{
    chaos::{Callers, Report, Settings, chaos_seed, env_or, gateway_flags, plan, submit_all},
    databases::TestDatabase,
    process::GatewayProcess,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replicas_tenants_are_taken_over_and_every_job_ends_with_one_backup() {
    // Arrange: the simulator, one PostgreSQL schema, two replicas.
    let settings = Settings {
        submissions: env_or("REPLICAS_CREATES", 60),
        kills: 1,
        tenants: env_or::<usize>("REPLICAS_TENANTS", 4).max(2),
        concurrency: env_or::<usize>("REPLICAS_CONCURRENCY", 8).max(1),
        drain: Duration::from_secs(env_or("REPLICAS_DRAIN_SECS", 180)),
        seed: env_or("REPLICAS_SEED", fastrand::u64(..)),
    };
    let lease_ttl = std::env::var("REPLICAS_LEASE_TTL").unwrap_or_else(|_| "3s".into());
    let started = Instant::now();
    let seed = chaos_seed(&settings);
    let sim = Sim::new(
        SimConfig {
            backup_duration: Duration::from_millis(env_or("REPLICAS_BACKUP_MS", 2000)),
            ..SimConfig::default()
        },
        seed.clone(),
    );
    let cloud = sim.start().await.expect("simulator starts");
    let db = TestDatabase::postgres().await;
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let mut replicas: Vec<GatewayProcess> = dirs
        .iter()
        .map(|dir| {
            let mut flags = gateway_flags(dir.path(), &cloud, &seed, db.url());
            flags.extend(["--lease-ttl".to_owned(), lease_ttl.clone()]);
            GatewayProcess::new(dir.path(), flags)
        })
        .collect();
    for replica in &mut replicas {
        replica.start().await;
    }
    let addresses: Vec<String> = replicas.iter().map(|r| r.address.clone()).collect();
    let callers = Callers::new(&addresses, &seed);
    let submissions = plan(&settings, &seed, replicas.len());

    // Act: submit over both replicas; once half the creates are answered,
    // kill the second replica and time how long until the first works
    // every tenant the dead one held.
    let done = Arc::new(AtomicUsize::new(0));
    let victim = replicas.pop().expect("two replicas");
    let survivor = replicas.pop().expect("two replicas");
    let killer = tokio::spawn(kill_and_time_takeover(
        victim,
        survivor.address.clone(),
        settings.submissions / 2,
        done.clone(),
    ));
    let outcomes = submit_all(&callers, &submissions, settings.concurrency, &done).await;
    let takeover = killer.await.expect("killer task");
    let jobs = callers.wait_until_all_done(&outcomes, settings.drain).await;

    // Assert, through the surviving replica's API and the simulator.
    let report = Report::new(&seed, &sim, &jobs, &outcomes, &callers).await;
    let retried = jobs
        .values()
        .filter(|j| j["attempts"].as_u64().unwrap_or(0) > 1)
        .count();
    println!(
        "replicas summary: creates={} replicas=2 kills=1 accepted={} unanswered={} jobs={} {} \
         lost={} duplicates={} orphans={} succeeded_without_backup={} failed_with_backup={} \
         not_done={} posted_twice={} backups={} held_by_killed={:?} lease_ttl={} takeover={:.1}s total={:.1}s seed={}",
        submissions.len(),
        outcomes.accepted,
        outcomes.unanswered,
        jobs.len(),
        report.states(),
        report.lost.len(),
        report.duplicates.len(),
        report.orphans.len(),
        report.succeeded_without_backup.len(),
        report.failed_with_backup.len(),
        report.not_done.len(),
        retried,
        report.backups,
        takeover.held_by_victim,
        lease_ttl,
        takeover.took.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        settings.seed,
    );
    if !report.is_clean() {
        for dir in &dirs {
            eprintln!("{}", report.sequences(dir.path()));
        }
    }
    if !takeover.taken_over {
        // What each replica said about its leases.
        for (n, dir) in dirs.iter().enumerate() {
            let log = std::fs::read_to_string(dir.path().join("gateway-0.log")).unwrap_or_default();
            for line in log.lines().filter(|l| l.contains("lease")) {
                eprintln!("replica {n}: {line}");
            }
        }
    }
    drop(survivor);
    assert!(
        !takeover.held_by_victim.is_empty(),
        "the tenants were spread: the killed replica held some"
    );
    assert!(
        takeover.taken_over,
        "the survivor took over {:?}",
        takeover.held_by_victim
    );
    report.assert_clean();
    let succeeded = jobs.values().filter(|j| j["state"] == "succeeded").count();
    assert_eq!(
        succeeded,
        jobs.len(),
        "with no faults every job succeeds: {}",
        report.states()
    );
}

/// What the kill showed.
struct Takeover {
    /// The tenants the killed replica held just before the kill.
    held_by_victim: Vec<String>,
    /// Whether the survivor came to hold each of them.
    taken_over: bool,
    /// From the kill until the survivor had held each of them.
    took: Duration,
}

/// Waits until `done` reaches `at`, reads which tenants the victim holds,
/// kills it, and polls the survivor's readiness until it has held each of
/// them (bounded by a minute).
async fn kill_and_time_takeover(
    mut victim: GatewayProcess,
    survivor: String,
    at: usize,
    done: Arc<AtomicUsize>,
) -> Takeover {
    while done.load(Ordering::SeqCst) < at {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = reqwest::Client::new();
    let held = |address: String| {
        let client = client.clone();
        async move {
            let ready: Value = client
                .get(format!("{address}/readyz"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some(
                ready["leased_tenants"]
                    .as_array()?
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect::<BTreeSet<String>>(),
            )
        }
    };
    let held_by_victim = held(victim.address.clone()).await.unwrap_or_default();
    victim.kill();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(60);
    // A tenant taken over is held at least until the survivor's next cycle
    // (it gives back only tenants whose jobs all ended): polling readiness
    // more often than it cycles sees every one.
    let mut seen = BTreeSet::new();
    let mut taken_over = false;
    while Instant::now() < deadline {
        seen.extend(held(survivor.clone()).await.unwrap_or_default());
        if seen.is_superset(&held_by_victim) {
            taken_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Takeover {
        held_by_victim: held_by_victim.into_iter().collect(),
        taken_over,
        took: killed.elapsed(),
    }
}
