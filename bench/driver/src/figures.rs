//! The measurements of the performance table, round by round, and the
//! table itself. Each figure is a value and the baseline it is read
//! against, both measured in the same round.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{
    Args,
    cloud::{Cloud, Control, Direct, SnapshotPool, operation_calls, service_calls},
    load::{Bound, closed_loop, quantile},
    procs::{Gateway, GatewayOptions, Sim, caller_token, spawn_baseline},
};

/// Callers of the read figure (connections).
const READ_CALLERS: usize = 32;
/// Callers of the create-throughput figure.
const CREATE_CALLERS: usize = 16;
/// Requests of the cold-token figure.
const COLD_REQUESTS: usize = 1000;
/// Worker interval of the scale figures, as the issue states them.
const SCALE_INTERVAL: Duration = Duration::from_secs(1);
/// Worker interval while resident memory is followed: short, so that many
/// cycles pass quickly.
const MEMORY_INTERVAL: Duration = Duration::from_millis(100);
/// What a call to a real Cinder takes, about (BENCHMARKS.md: a snapshot
/// read through the gateway took 9 ms on the real-service harness).
const CINDER_LATENCY: Duration = Duration::from_millis(5);
/// Cycles over which upstream calls and CPU per cycle are averaged.
const COUNTED_CYCLES: u64 = 10;

/// One row of the table: a value per round, and its goal.
struct Figure {
    name: &'static str,
    unit: &'static str,
    goal: &'static str,
    /// Whether a value meets the goal; `None` for a figure only reported.
    meets: Option<fn(f64) -> bool>,
    values: Vec<f64>,
    /// What each round's value was read against, for the record.
    notes: Vec<String>,
}

impl Figure {
    fn new(
        name: &'static str,
        unit: &'static str,
        goal: &'static str,
        meets: Option<fn(f64) -> bool>,
    ) -> Self {
        Figure {
            name,
            unit,
            goal,
            meets,
            values: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn record(&mut self, value: f64, note: String) {
        println!("  {}: {value:.3} {} ({note})", self.name, self.unit);
        self.values.push(value);
        self.notes.push(note);
    }
}

/// The table's figures, in its order.
struct Table {
    read_ratio: Figure,
    create_p50: Figure,
    create_p99: Figure,
    create_rate: Figure,
    create_rate_slow: Figure,
    calls_per_cycle: Figure,
    rss: Figure,
    rss_growth: Figure,
    wal: Figure,
    cpu_per_cycle: Figure,
    cpu_growth: Figure,
    finish_all: Figure,
    cold_tokens: Figure,
    startup: Figure,
    startup_loaded: Figure,
}

impl Table {
    fn new() -> Table {
        Table {
            read_ratio: Figure::new(
                "GET /jobs/{id} req/s / GET /healthz req/s, 32 connections",
                "ratio",
                ">= 0.5",
                Some(|v| v >= 0.5),
            ),
            create_p50: Figure::new(
                "create p50 overhead over the same calls made directly",
                "ms",
                "<= 0.3 ms",
                Some(|v| v <= 0.3),
            ),
            create_p99: Figure::new(
                "create p99 overhead over the same calls made directly",
                "ms",
                "<= 1.5 ms",
                Some(|v| v <= 1.5),
            ),
            create_rate: Figure::new(
                "creates/s at concurrency 16 / the same calls made directly",
                "ratio",
                ">= 0.8",
                Some(|v| v >= 0.8),
            ),
            create_rate_slow: Figure::new(
                "the same, every simulated Cinder call taking 5 ms",
                "ratio",
                ">= 0.8",
                Some(|v| v >= 0.8),
            ),
            calls_per_cycle: Figure::new(
                "Cinder calls per worker cycle / tenants",
                "ratio",
                "1: one listing page each (<= 1.1, cycles counted at their start)",
                Some(|v| v <= 1.1),
            ),
            rss: Figure::new(
                "gateway RSS with the running jobs, after the cycles",
                "MiB",
                "<= 64 MiB",
                Some(|v| v <= 64.0),
            ),
            rss_growth: Figure::new(
                "RSS growth from cycle 20 to the last cycle",
                "MiB",
                "flat (<= 2 MiB)",
                Some(|v| v <= 2.0),
            ),
            wal: Figure::new(
                "SQLite WAL size after the cycles",
                "MiB",
                "bounded (<= 8 MiB)",
                Some(|v| v <= 8.0),
            ),
            cpu_per_cycle: Figure::new(
                "gateway CPU per worker cycle, nothing finishing",
                "ms",
                "grows with changes, not with jobs (next row)",
                None,
            ),
            cpu_growth: Figure::new(
                "  its growth per 1,000 more running jobs",
                "ms",
                "<= 2 ms: their ids in Cinder's listings, no store read",
                Some(|v| v <= 2.0),
            ),
            finish_all: Figure::new(
                "all jobs finishing at once: last `succeeded` after Cinder's `available`",
                "s",
                "<= interval (1 s) + 1 s",
                Some(|v| v <= 2.0),
            ),
            cold_tokens: Figure::new(
                "Keystone token requests / tenants, 1,000 concurrent requests over cold tenants",
                "ratio",
                "1: one per tenant",
                Some(|v| v <= 1.0),
            ),
            startup: Figure::new(
                "start-up to /readyz, empty store",
                "ms",
                "<= 50 ms",
                Some(|v| v <= 50.0),
            ),
            startup_loaded: Figure::new(
                "start-up to /readyz, the running jobs in the store",
                "ms",
                "reported",
                None,
            ),
        }
    }

    fn rows(&self) -> [&Figure; 15] {
        [
            &self.read_ratio,
            &self.create_p50,
            &self.create_p99,
            &self.create_rate,
            &self.create_rate_slow,
            &self.calls_per_cycle,
            &self.rss,
            &self.rss_growth,
            &self.wal,
            &self.cpu_per_cycle,
            &self.cpu_growth,
            &self.finish_all,
            &self.cold_tokens,
            &self.startup,
            &self.startup_loaded,
        ]
    }

    fn print(&self, args: &Args) {
        println!();
        println!(
            "| figure | unit | min / median / max ({} rounds{}) | goal | median meets it |",
            args.rounds,
            if args.quick { ", quick" } else { "" }
        );
        println!("|---|---|---|---|---|");
        for figure in self.rows() {
            let mut values = figure.values.clone();
            values.sort_by(f64::total_cmp);
            let Some(median) = values.get(values.len() / 2).copied() else {
                println!(
                    "| {} | {} | not measured | {} | |",
                    figure.name, figure.unit, figure.goal
                );
                continue;
            };
            let (min, max) = (values[0], values[values.len() - 1]);
            println!(
                "| {} | {} | {} / {} / {} | {} | {} |",
                figure.name,
                figure.unit,
                fmt(min),
                fmt(median),
                fmt(max),
                figure.goal,
                match figure.meets {
                    None => "(reported)",
                    Some(meets) if meets(median) => "yes",
                    Some(_) => "**no**",
                }
            );
        }
        println!();
        println!("Baselines, round by round:");
        for figure in self.rows() {
            for (round, note) in figure.notes.iter().enumerate() {
                println!("- {} (round {}): {note}", figure.name, round + 1);
            }
        }
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const MIB: f64 = 1024.0 * 1024.0;

/// Runs every round and prints the table.
pub async fn run(args: &Args) -> anyhow::Result<()> {
    for bin in [&args.gateway_bin, &args.sim_bin] {
        if !bin.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release` (bench/run does)",
                bin.display()
            );
        }
    }
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("backup-gateway-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work)?;
    println!("bench-driver: work dir {}", work.display());
    let secret = format!(
        "bench-secret-{}-{}",
        std::process::id(),
        chrono_free_nonce()
    );
    let mut table = Table::new();
    for round in 0..args.rounds {
        println!("== round {} of {}", round + 1, args.rounds);
        let dir = work.join(format!("round-{}", round + 1));
        std::fs::create_dir_all(&dir)?;
        Round::run(args, &dir, &secret, round, &mut table)
            .await
            .with_context(|| format!("round {} (logs in {})", round + 1, dir.display()))?;
    }
    table.print(args);
    Ok(())
}

/// A value that differs between runs without a clock crate.
fn chrono_free_nonce() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// One round: its simulator, seed and callers.
struct Round<'a> {
    args: &'a Args,
    dir: &'a Path,
    secret: &'a str,
    http: reqwest::Client,
    cloud: Arc<Cloud>,
    sim: Sim,
    control: Control,
    /// Caller tokens, by tenant index.
    tokens: Arc<Vec<String>>,
    snapshots: SnapshotPool,
    /// Jobs made so far through the gateway.
    created: usize,
}

impl<'a> Round<'a> {
    async fn run(
        args: &'a Args,
        dir: &'a Path,
        secret: &'a str,
        round: usize,
        table: &mut Table,
    ) -> anyhow::Result<()> {
        let tenants = args.tenants.max(1);
        // Snapshots: the scale jobs, plus both sides of each create figure.
        let fast = 2 * (args.creates() + args.creates() / 4 + latency_samples(args)) + 2 * tenants;
        let per_tenant = args.jobs.div_ceil(tenants) + fast.div_ceil(tenants) + 2;
        let seed = dir.join("seed.json");
        let cloud = Arc::new(Cloud::seed(&seed, tenants, per_tenant)?);
        // Backups never finish on their own: the jobs stay running until
        // the finish-all figure ends them.
        let sim = Sim::start(&args.sim_bin, dir, &seed, Duration::from_secs(24 * 3600)).await?;
        let control = Control {
            root: sim.control(),
        };
        let tokens = cloud
            .names()
            .iter()
            .map(|t| caller_token(&args.gateway_bin, secret, t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut this = Round {
            args,
            dir,
            secret,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
            snapshots: SnapshotPool::new(&cloud),
            cloud,
            sim,
            control,
            tokens: Arc::new(tokens),
            created: 0,
        };
        let database = format!("sqlite://{}", dir.join("gateway.db").display());
        let gateway = this
            .start_gateway(&database, SCALE_INTERVAL, "fast")
            .await?;
        let baseline = spawn_baseline(&args.gateway_bin)?;
        table.startup.record(
            ms(gateway.startup),
            format!(
                "{} tenants, empty store; `backup-gateway --version` runs in {:.1} ms",
                tenants,
                ms(baseline)
            ),
        );
        this.cold_tokens(&gateway, table).await?;
        let directs = this.login_all().await?;
        this.reads(&gateway, round, table).await?;
        this.create_latency(&gateway, &directs, round, table)
            .await?;
        this.create_rates(&gateway, &directs, round, table).await?;
        if args.scale_in(round) {
            this.scale(gateway, &database, table).await?;
        } else {
            gateway.process.stop()?;
        }
        this.sim.process.stop()?;
        Ok(())
    }

    async fn start_gateway(
        &self,
        database: &str,
        interval: Duration,
        label: &str,
    ) -> anyhow::Result<Gateway> {
        let names = self.cloud.names();
        Gateway::start(&GatewayOptions {
            bin: &self.args.gateway_bin,
            dir: self.dir,
            database_url: database,
            clouds_yaml: &self.sim.clouds_yaml,
            tenants: &names,
            secret: self.secret,
            poll_interval: interval,
            label,
        })
        .await
    }

    /// 1,000 requests at once over tenants the gateway has no token for:
    /// Keystone should be asked once per tenant.
    async fn cold_tokens(&self, gateway: &Gateway, table: &mut Table) -> anyhow::Result<()> {
        self.control.reset_calls(&self.http).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..COLD_REQUESTS {
            let t = i % self.tokens.len();
            let request = self
                .http
                .get(format!("{}/snapshots?limit=1", gateway.url))
                .bearer_auth(&self.tokens[t]);
            tasks.spawn(async move { request.send().await.map(|a| a.status().as_u16()) });
        }
        while let Some(done) = tasks.join_next().await {
            let status = done??;
            if status != 200 {
                bail!("cold GET /snapshots answered {status}");
            }
        }
        let calls = self.control.calls(&self.http).await?;
        table.cold_tokens.record(
            operation_calls(&calls, "TokenIssue") as f64 / self.tokens.len() as f64,
            format!(
                "{} tenants, {COLD_REQUESTS} requests at once",
                self.tokens.len()
            ),
        );
        Ok(())
    }

    /// A token of each tenant, for the direct calls.
    async fn login_all(&self) -> anyhow::Result<Arc<Vec<Direct>>> {
        let keystone = &self.sim.keystone;
        let mut directs = Vec::new();
        for tenant in &self.cloud.tenants {
            directs.push(Direct::login(&self.http, keystone, &self.sim.cinder, tenant).await?);
        }
        Ok(Arc::new(directs))
    }

    /// A create through the gateway on the next snapshot of tenant `t`.
    fn gateway_create(
        &mut self,
        gateway: &Gateway,
        t: usize,
    ) -> anyhow::Result<impl Future<Output = anyhow::Result<String>> + Send + 'static> {
        let (snapshot, _) = self.snapshots.take(&self.cloud, t)?;
        self.created += 1;
        let request = self
            .http
            .post(format!("{}/snapshots/{snapshot}/backups", gateway.url))
            .bearer_auth(&self.tokens[t])
            .header("content-type", "application/json")
            .body("{}");
        Ok(async move {
            let answer = request.send().await?;
            let status = answer.status();
            let body: Value = answer.json().await?;
            if status != 202 {
                bail!("create answered {status}: {body}");
            }
            Ok(body["id"].as_str().unwrap_or_default().to_owned())
        })
    }

    /// A direct create (snapshot read + backup create) on the next snapshot
    /// of tenant `t`.
    fn direct_create(
        &mut self,
        directs: &Arc<Vec<Direct>>,
        t: usize,
    ) -> anyhow::Result<impl Future<Output = anyhow::Result<()>> + Send + 'static> {
        let (snapshot, _) = self.snapshots.take(&self.cloud, t)?;
        let snapshot = snapshot.clone();
        let direct = directs[t].clone();
        let http = self.http.clone();
        Ok(async move {
            direct
                .create(&http, &snapshot, &format!("direct-{snapshot}"))
                .await
        })
    }

    /// `GET /jobs/{id}` and `/healthz` at 32 connections, in alternating order.
    async fn reads(
        &mut self,
        gateway: &Gateway,
        round: usize,
        table: &mut Table,
    ) -> anyhow::Result<()> {
        let job = self.gateway_create(gateway, 0)?.await?;
        let job_url = Arc::new(format!("{}/jobs/{job}", gateway.url));
        let health_url = Arc::new(format!("{}/healthz", gateway.url));
        let token = Arc::new(self.tokens[0].clone());
        let seconds = self.args.seconds();
        let read = |url: Arc<String>, token: Option<Arc<String>>| {
            let http = self.http.clone();
            closed_loop(READ_CALLERS, Bound::For(seconds), move |_| {
                let mut request = http.get(url.as_str());
                if let Some(token) = &token {
                    request = request.bearer_auth(token.as_str());
                }
                async move {
                    let answer = request.send().await?;
                    if answer.status() != 200 {
                        bail!("read answered {}", answer.status());
                    }
                    answer.bytes().await?;
                    Ok(())
                }
            })
        };
        // Warm the connections of both.
        read(health_url.clone(), None).await?;
        let (health, jobs) = if round.is_multiple_of(2) {
            let health = read(health_url, None).await?;
            (health, read(job_url, Some(token)).await?)
        } else {
            let jobs = read(job_url, Some(token)).await?;
            (read(health_url, None).await?, jobs)
        };
        table.read_ratio.record(
            jobs.rate() / health.rate(),
            format!(
                "GET /jobs/{{id}} {:.0} req/s (p99 {:.2} ms), /healthz {:.0} req/s (p99 {:.2} ms)",
                jobs.rate(),
                ms(jobs.quantile(0.99)),
                health.rate(),
                ms(health.quantile(0.99))
            ),
        );
        Ok(())
    }

    /// Creates one at a time, alternating gateway and direct, each on a
    /// fresh snapshot: the gateway's latency over the same upstream calls.
    async fn create_latency(
        &mut self,
        gateway: &Gateway,
        directs: &Arc<Vec<Direct>>,
        round: usize,
        table: &mut Table,
    ) -> anyhow::Result<()> {
        let tenants = self.tokens.len();
        // Warm each tenant's token and connections on both sides.
        for t in 0..tenants {
            self.gateway_create(gateway, t)?.await?;
            self.direct_create(directs, t)?.await?;
        }
        let samples = latency_samples(self.args);
        let (mut via_gateway, mut direct) = (Vec::new(), Vec::new());
        for i in 0..samples {
            let t = i % tenants;
            let gateway_first = (i + round).is_multiple_of(2);
            for side in [gateway_first, !gateway_first] {
                let started = Instant::now();
                if side {
                    self.gateway_create(gateway, t)?.await?;
                    via_gateway.push(started.elapsed());
                } else {
                    self.direct_create(directs, t)?.await?;
                    direct.push(started.elapsed());
                }
            }
        }
        via_gateway.sort();
        direct.sort();
        for (figure, q) in [(&mut table.create_p50, 0.5), (&mut table.create_p99, 0.99)] {
            let (g, d) = (quantile(&via_gateway, q), quantile(&direct, q));
            figure.record(
                ms(g) - ms(d),
                format!(
                    "{samples} creates each: gateway {:.3} ms, direct {:.3} ms",
                    ms(g),
                    ms(d)
                ),
            );
        }
        Ok(())
    }

    /// Creates at concurrency 16, through the gateway and directly, with
    /// the simulator answering at once and then as slowly as a real Cinder.
    async fn create_rates(
        &mut self,
        gateway: &Gateway,
        directs: &Arc<Vec<Direct>>,
        round: usize,
        table: &mut Table,
    ) -> anyhow::Result<()> {
        let count = self.args.creates();
        let rate = self.create_rate(gateway, directs, round, count).await?;
        table.create_rate.record(rate.0, rate.1);
        self.control
            .set_latency(&self.http, Some(CINDER_LATENCY))
            .await?;
        let slow = self.create_rate(gateway, directs, round, count / 4).await;
        self.control.set_latency(&self.http, None).await?;
        let slow = slow?;
        table.create_rate_slow.record(slow.0, slow.1);
        Ok(())
    }

    /// `count` creates each way at concurrency 16, in an order that
    /// alternates by round: the gateway's rate over the direct one, and a
    /// note of both.
    async fn create_rate(
        &mut self,
        gateway: &Gateway,
        directs: &Arc<Vec<Direct>>,
        round: usize,
        count: usize,
    ) -> anyhow::Result<(f64, String)> {
        let tenants = self.tokens.len();
        let mut gateway_creates = Vec::new();
        let mut direct_creates = Vec::new();
        for i in 0..count {
            gateway_creates.push(self.gateway_create(gateway, i % tenants)?);
            direct_creates.push(self.direct_create(directs, i % tenants)?);
        }
        let (via_gateway, direct) = if round.is_multiple_of(2) {
            let g = run_prepared(gateway_creates).await?;
            (g, run_prepared(direct_creates).await?)
        } else {
            let direct = run_prepared(direct_creates).await?;
            (run_prepared(gateway_creates).await?, direct)
        };
        Ok((
            via_gateway.rate() / direct.rate(),
            format!(
                "{count} creates each: gateway {:.0}/s, direct {:.0}/s",
                via_gateway.rate(),
                direct.rate()
            ),
        ))
    }

    /// Upstream calls and gateway CPU per worker cycle, over
    /// [`COUNTED_CYCLES`] cycles. Timed, not watched: a look at /metrics
    /// counts the jobs in the store, which would add its own cost.
    async fn per_cycle(&self, gateway: &Gateway) -> anyhow::Result<(CallsPerCycle, Duration)> {
        wait_cycles(&self.http, gateway, 1).await?;
        self.control.reset_calls(&self.http).await?;
        let cycles = metric(&self.http, gateway, CYCLES).await?;
        // The CPU window lies inside the two looks at /metrics.
        let cpu = gateway.process.cpu_time()?;
        tokio::time::sleep(SCALE_INTERVAL * COUNTED_CYCLES as u32).await;
        let cpu = gateway.process.cpu_time()? - cpu;
        let cycles = (metric(&self.http, gateway, CYCLES).await? - cycles).max(1.0);
        let calls = self.control.calls(&self.http).await?;
        Ok((
            CallsPerCycle {
                cinder: service_calls(&calls, "cinder") as f64 / cycles,
                keystone: service_calls(&calls, "keystone") as f64 / cycles,
            },
            cpu.div_f64(cycles),
        ))
    }

    /// The scale figures: the running jobs, calls and CPU per cycle,
    /// memory and WAL over many cycles, all finishing at once.
    async fn scale(
        &mut self,
        gateway: Gateway,
        database: &str,
        table: &mut Table,
    ) -> anyhow::Result<()> {
        let tenants = self.tokens.len();
        // CPU per cycle with the jobs the earlier figures made, to see how
        // it grows with 10,000.
        let before_jobs = self.created;
        let (_, cpu_before) = self.per_cycle(&gateway).await?;
        let wanted = self.args.jobs.saturating_sub(self.created);
        println!(
            "  making {wanted} more running jobs ({} so far)",
            self.created
        );
        let mut creates = Vec::new();
        let first = self.created;
        for i in 0..wanted {
            // Round robin from where the earlier creates left off.
            creates.push(self.gateway_create(&gateway, (first + i) % tenants)?);
        }
        run_prepared(creates).await?;
        let running = metric(
            &self.http,
            &gateway,
            "backup_gateway_jobs{state=\"running\"}",
        )
        .await?;
        println!("  {running} jobs running");

        // Calls and CPU per cycle at the 1 s interval.
        let (calls, cpu) = self.per_cycle(&gateway).await?;
        table.calls_per_cycle.record(
            calls.cinder / tenants as f64,
            format!(
                "{running} running jobs over {tenants} tenants: baseline {tenants} (one listing page per tenant); Keystone calls {:.1} per cycle",
                calls.keystone
            ),
        );
        table.cpu_per_cycle.record(
            ms(cpu),
            format!(
                "{running} running jobs; {:.1} ms at {before_jobs} running jobs, before the rest were made",
                ms(cpu_before)
            ),
        );
        let more = (running - before_jobs as f64).max(1.0);
        table.cpu_growth.record(
            (ms(cpu) - ms(cpu_before)) * 1000.0 / more,
            format!(
                "{:.1} ms per cycle at {before_jobs} running jobs, {:.1} ms at {running}",
                ms(cpu_before),
                ms(cpu)
            ),
        );
        gateway.process.stop()?;

        // Memory over many cycles, at a short interval.
        let gateway = self
            .start_gateway(database, MEMORY_INTERVAL, "memory")
            .await?;
        let cycles = self.args.cycles() as u64;
        let first = cycles.min(20);
        wait_cycles(&self.http, &gateway, first).await?;
        let early = gateway.process.rss_bytes()? as f64 / MIB;
        wait_cycles(&self.http, &gateway, cycles - first).await?;
        let late = gateway.process.rss_bytes()? as f64 / MIB;
        table.rss.record(
            late,
            format!(
                "{running} running jobs, after {cycles} cycles at {} ms",
                MEMORY_INTERVAL.as_millis()
            ),
        );
        table.rss_growth.record(
            late - early,
            format!("{early:.1} MiB at cycle {first}, {late:.1} MiB at cycle {cycles}"),
        );
        let db = file_size(&self.dir.join("gateway.db"));
        let wal = file_size(&self.dir.join("gateway.db-wal"));
        table
            .wal
            .record(wal / MIB, format!("beside a {:.1} MiB database", db / MIB));
        gateway.process.stop()?;

        // All at once: Cinder ends every backup; the clock runs until the
        // gateway has recorded the last job.
        let gateway = self
            .start_gateway(database, SCALE_INTERVAL, "finish")
            .await?;
        table.startup_loaded.record(
            ms(gateway.startup),
            format!("{running} running jobs over {tenants} tenants"),
        );
        wait_cycles(&self.http, &gateway, 1).await?;
        let succeeded_before = metric(&self.http, &gateway, SUCCEEDED).await?;
        let started = Instant::now();
        self.control.finish_pending(&self.http).await?;
        let deadline = started + Duration::from_secs(120);
        loop {
            let left = metric(
                &self.http,
                &gateway,
                "backup_gateway_jobs{state=\"running\"}",
            )
            .await?;
            if left == 0.0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("{left} jobs still running 120 s after their backups ended");
            }
            // Each look counts the jobs in the store: not too often.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let elapsed = started.elapsed();
        let succeeded = metric(&self.http, &gateway, SUCCEEDED).await?;
        if succeeded < succeeded_before + running {
            bail!(
                "{running} jobs were running, but only {} more succeeded",
                succeeded - succeeded_before
            );
        }
        table.finish_all.record(
            elapsed.as_secs_f64(),
            format!("{running} jobs ({succeeded} succeeded in all), worker interval 1 s"),
        );
        gateway.process.stop()?;
        Ok(())
    }
}

/// Upstream calls per worker cycle.
struct CallsPerCycle {
    cinder: f64,
    keystone: f64,
}

/// Creates of the latency figure, per side.
fn latency_samples(args: &Args) -> usize {
    if args.quick { 200 } else { 500 }
}

/// Sends requests prepared beforehand (each on its own snapshot), 16 at a
/// time.
async fn run_prepared<F, T>(requests: Vec<F>) -> anyhow::Result<crate::load::Run>
where
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let count = requests.len();
    let requests: Arc<Vec<std::sync::Mutex<Option<F>>>> = Arc::new(
        requests
            .into_iter()
            .map(|r| std::sync::Mutex::new(Some(r)))
            .collect(),
    );
    closed_loop(CREATE_CALLERS, Bound::Count(count), move |i| {
        let request = requests[i].lock().ok().and_then(|mut r| r.take());
        async move {
            request.context("request sent twice")?.await?;
            Ok(())
        }
    })
    .await
}

fn file_size(path: &Path) -> f64 {
    std::fs::metadata(path)
        .map(|m| m.len() as f64)
        .unwrap_or(0.0)
}

/// One sample of the gateway's `/metrics` (`OpenMetrics` text), by its full
/// name with labels.
async fn metric(http: &reqwest::Client, gateway: &Gateway, name: &str) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{}/metrics", gateway.url))
        .send()
        .await?
        .text()
        .await?;
    let value = text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    });
    match value {
        Some(value) => Ok(value),
        // A state no job is in has no line.
        None if name.starts_with("backup_gateway_jobs{") => Ok(0.0),
        None => bail!("/metrics has no {name}"),
    }
}

/// The gateway's count of succeeded jobs.
const SUCCEEDED: &str = "backup_gateway_jobs{state=\"succeeded\"}";

/// The gateway's count of worker cycles.
const CYCLES: &str = "backup_gateway_worker_cycle_duration_seconds_count";

/// Waits until `n` more worker cycles have started, looking every 100 ms.
async fn wait_cycles(http: &reqwest::Client, gateway: &Gateway, n: u64) -> anyhow::Result<()> {
    let start = metric(http, gateway, CYCLES).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while metric(http, gateway, CYCLES).await? < start + n as f64 {
        if Instant::now() > deadline {
            bail!("{n} worker cycles did not pass within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
