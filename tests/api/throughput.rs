//! Throughput of the two stores, measured in one run: the real gateway
//! binary on SQLite and on PostgreSQL in turn (rounds interleaved), in
//! front of the simulator, driven over loopback by callers in this
//! process: creates per second (each on a snapshot of its own), then
//! `GET /jobs/{id}` per second over the jobs just made. Every answer must
//! be right (202, then 200 with the job): the figures are only printed.
//!
//! CI runs it small; `bench/stores` scales it in release mode with
//! `THROUGHPUT_CREATES` (40), `THROUGHPUT_GETS` (200),
//! `THROUGHPUT_CONCURRENCY` (16) and `THROUGHPUT_ROUNDS` (1). One line per
//! store and round, and a summary line, go to stdout.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use backup_gateway::auth::sign_hs256;
use openstack_sim::{Seed, Sim, SimConfig};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;

use crate::{
    chaos::{JWT_SECRET, Settings, chaos_seed, env_or, gateway_flags, join_all},
    databases::TestDatabase,
    process::GatewayProcess,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_and_reads_per_second_on_sqlite_and_postgresql() {
    let creates: usize = env_or("THROUGHPUT_CREATES", 40);
    let gets: usize = env_or("THROUGHPUT_GETS", 200);
    let concurrency: usize = env_or::<usize>("THROUGHPUT_CONCURRENCY", 16).max(1);
    let rounds: usize = env_or::<usize>("THROUGHPUT_ROUNDS", 1).max(1);
    let mut figures: Vec<(&str, f64, f64)> = Vec::new();
    for round in 0..rounds {
        for kind in ["sqlite", "postgres"] {
            let (creates_per_s, gets_per_s) = measure(kind, creates, gets, concurrency).await;
            println!(
                "throughput round={round} store={kind} creates={creates} creates_per_s={creates_per_s:.0} gets={gets} gets_per_s={gets_per_s:.0} concurrency={concurrency}"
            );
            figures.push((kind, creates_per_s, gets_per_s));
        }
    }
    let median = |kind: &str, pick: fn(&(&str, f64, f64)) -> f64| {
        let mut values: Vec<f64> = figures.iter().filter(|f| f.0 == kind).map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "throughput summary: rounds={rounds} creates_per_s sqlite={:.0} postgres={:.0} ratio={:.2} gets_per_s sqlite={:.0} postgres={:.0} ratio={:.2}",
        median("sqlite", |f| f.1),
        median("postgres", |f| f.1),
        median("postgres", |f| f.1) / median("sqlite", |f| f.1),
        median("sqlite", |f| f.2),
        median("postgres", |f| f.2),
        median("postgres", |f| f.2) / median("sqlite", |f| f.2),
    );
}

/// One gateway on a fresh store of `kind`: creates per second, then reads
/// per second.
async fn measure(kind: &str, creates: usize, gets: usize, concurrency: usize) -> (f64, f64) {
    let settings = Settings {
        submissions: creates,
        kills: 0,
        tenants: 1,
        concurrency,
        drain: Duration::ZERO,
        seed: 0,
    };
    let seed = chaos_seed(&settings);
    // Backups never finish: the worker has nothing to conclude meanwhile.
    let sim = Sim::new(
        SimConfig {
            backup_duration: Duration::from_secs(24 * 3600),
            ..SimConfig::default()
        },
        seed.clone(),
    );
    let cloud = sim.start().await.expect("simulator starts");
    let db = match kind {
        "sqlite" => TestDatabase::sqlite(),
        _ => TestDatabase::postgres().await,
    };
    let dir = tempfile::tempdir().expect("dir");
    let mut gateway = GatewayProcess::new(
        dir.path(),
        gateway_flags(dir.path(), &cloud, &seed, db.url()),
    );
    gateway.start().await;
    let token = caller_token(&seed);
    let client = reqwest::Client::new();
    let snapshots: Vec<&str> = seed.tenants[0]
        .snapshots
        .iter()
        .map(|s| s.id.as_str())
        .collect();

    let ids = std::sync::Mutex::new(Vec::with_capacity(creates));
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    join_all((0..concurrency).map(|_| async {
        while let Some(snapshot) = snapshots.get(next.fetch_add(1, Ordering::Relaxed)) {
            let answer = client
                .post(format!("{}/snapshots/{snapshot}/backups", gateway.address))
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await
                .expect("create answered");
            assert_eq!(answer.status(), StatusCode::ACCEPTED, "create on {kind}");
            let job: serde_json::Value = answer.json().await.expect("job");
            let id = job["id"].as_str().expect("job id").to_owned();
            ids.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        }
    }))
    .await;
    let creates_per_s = creates as f64 / started.elapsed().as_secs_f64();

    let ids = ids.into_inner().unwrap_or_else(|e| e.into_inner());
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    join_all((0..concurrency).map(|_| async {
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n >= gets {
                return;
            }
            let id = &ids[n % ids.len()];
            let answer = client
                .get(format!("{}/jobs/{id}", gateway.address))
                .bearer_auth(&token)
                .send()
                .await
                .expect("read answered");
            assert_eq!(answer.status(), StatusCode::OK, "read on {kind}");
            let job: serde_json::Value = answer.json().await.expect("job");
            assert_eq!(job["id"], id.as_str());
        }
    }))
    .await;
    let gets_per_s = gets as f64 / started.elapsed().as_secs_f64();
    (creates_per_s, gets_per_s)
}

fn caller_token(seed: &Seed) -> String {
    let claims = json!({
        "tenant": seed.tenants[0].name,
        "sub": "throughput",
        "iss": "chaos",
        "aud": "backup-gateway",
        "scope": "backups:read backups:write",
        "exp": chrono::Utc::now().timestamp() + 3600,
    });
    sign_hs256(&SecretString::from(JWT_SECRET.to_owned()), &claims).expect("sign")
}
