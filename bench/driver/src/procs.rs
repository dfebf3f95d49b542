//! The processes under test: `openstack-sim` and `backup-gateway serve`,
//! started on free loopback ports, and what the driver reads of them from
//! outside (readiness, resident memory and CPU time from `/proc`).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// A free loopback port (the listener is closed before it is used, so
/// another process could take it first; on a quiet machine none does).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process killed when dropped, its output in a log file.
pub struct Process {
    child: Child,
    name: &'static str,
}

impl Process {
    fn spawn(name: &'static str, mut command: Command, log: &Path) -> anyhow::Result<Process> {
        let out = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Process { child, name })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in bytes (`VmRSS`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .context("no VmRSS")?;
        let kib: u64 = line.split_whitespace().nth(1).context("VmRSS")?.parse()?;
        Ok(kib * 1024)
    }

    /// User + system CPU time used so far.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name (which may hold spaces) in parens.
        let rest = stat.rsplit_once(')').context("stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
            + fields.get(12).context("stime")?.parse::<u64>()?;
        Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
    }

    /// SIGTERM, then waits up to 20 s (the gateway's grace), then SIGKILL.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not stop within 20 s of SIGTERM", self.name)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The running simulator.
pub struct Sim {
    pub process: Process,
    /// `http://127.0.0.1:P/v3`: Keystone, and the control endpoint's host.
    pub keystone: String,
    /// `http://127.0.0.1:P`
    pub cinder: String,
    pub clouds_yaml: PathBuf,
}

impl Sim {
    /// Starts `openstack-sim` on `seed`, waiting until it answers.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        seed: &Path,
        backup: Duration,
    ) -> anyhow::Result<Sim> {
        let (keystone_port, cinder_port) = (free_port()?, free_port()?);
        let clouds_yaml = dir.join("clouds.yaml");
        let mut command = Command::new(bin);
        command
            .arg("--keystone-listen")
            .arg(format!("127.0.0.1:{keystone_port}"))
            .arg("--cinder-listen")
            .arg(format!("127.0.0.1:{cinder_port}"))
            .arg("--seed")
            .arg(seed)
            .arg("--backup-duration")
            .arg(format!("{}ms", backup.as_millis()))
            .arg("--clouds-yaml-out")
            .arg(&clouds_yaml)
            .env("RUST_LOG", "warn");
        let process = Process::spawn("openstack-sim", command, &dir.join("sim.log"))?;
        let sim = Sim {
            process,
            keystone: format!("http://127.0.0.1:{keystone_port}/v3"),
            cinder: format!("http://127.0.0.1:{cinder_port}"),
            clouds_yaml,
        };
        let probe = format!("http://127.0.0.1:{keystone_port}/_sim/settings");
        wait_for(&probe, Duration::from_secs(60))
            .await
            .context("openstack-sim did not answer (see sim.log)")?;
        Ok(sim)
    }

    /// The control endpoint's root, `http://127.0.0.1:P/_sim`.
    pub fn control(&self) -> String {
        format!("{}/_sim", self.keystone.trim_end_matches("/v3"))
    }
}

/// How a gateway is started.
pub struct GatewayOptions<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub database_url: &'a str,
    pub clouds_yaml: &'a Path,
    pub tenants: &'a [String],
    pub secret: &'a str,
    pub poll_interval: Duration,
    /// Names the log file, so that each start of a round keeps its own.
    pub label: &'a str,
}

/// The running gateway.
pub struct Gateway {
    pub process: Process,
    pub url: String,
    /// From spawning the process to its first `200` from `/readyz`.
    pub startup: Duration,
}

impl Gateway {
    /// Starts `backup-gateway serve` and waits for `/readyz`.
    pub async fn start(options: &GatewayOptions<'_>) -> anyhow::Result<Gateway> {
        let port = free_port()?;
        let tenants: Vec<String> = options.tenants.iter().map(|t| format!("{t}={t}")).collect();
        let mut command = Command::new(options.bin);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--database-url")
            .arg(options.database_url)
            .arg("--clouds-file")
            .arg(options.clouds_yaml)
            .arg("--poll-interval")
            .arg(format!("{}ms", options.poll_interval.as_millis()))
            // Load from one address: no per-tenant rate limit, and enough
            // connections for the closed-loop callers.
            .arg("--rate-limit")
            .arg("0")
            .env("BACKUP_GATEWAY_TENANTS", tenants.join(","))
            .envs(token_settings(options.secret))
            .env("RUST_LOG", "warn");
        let log = options.dir.join(format!("gateway-{}.log", options.label));
        let started = Instant::now();
        let process = Process::spawn("backup-gateway", command, &log)?;
        let url = format!("http://127.0.0.1:{port}");
        wait_for(&format!("{url}/readyz"), Duration::from_secs(60))
            .await
            .with_context(|| {
                format!(
                    "backup-gateway did not become ready (see {})",
                    log.display()
                )
            })?;
        Ok(Gateway {
            process,
            url,
            startup: started.elapsed(),
        })
    }
}

/// Polls `url` every millisecond until it answers 200.
async fn wait_for(url: &str, limit: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(answer) = client.get(url).send().await
            && answer.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("{url} did not answer 200 within {limit:?}")
}

/// How the gateway checks caller tokens, and how they are signed.
fn token_settings(secret: &str) -> [(&'static str, String); 3] {
    [
        ("BACKUP_GATEWAY_JWT_SECRET", secret.to_owned()),
        ("BACKUP_GATEWAY_JWT_ISSUER", "bench-driver".to_owned()),
        ("BACKUP_GATEWAY_JWT_AUDIENCE", "backup-gateway".to_owned()),
    ]
}

/// A caller token of `tenant`, signed by the gateway's own `token` command.
pub fn caller_token(bin: &Path, secret: &str, tenant: &str) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(["token", "--for", tenant])
        .envs(token_settings(secret))
        .output()
        .context("backup-gateway token")?;
    if !out.status.success() {
        bail!(
            "backup-gateway token --for {tenant}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// How long `backup-gateway --version` takes from spawn to exit: the
/// baseline of the start-up figure (a process start with nothing to do).
pub fn spawn_baseline(bin: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("backup-gateway --version failed");
    }
    Ok(started.elapsed())
}
