//! `openstack-sim`: runs the Keystone + Cinder simulator standalone, prints
//! where it listens and a `clouds.yaml` for its tenants, and serves until
//! Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use openstack_sim::{Chaos, Seed, Sim, SimConfig};

/// `--help`'s description: the summary, then the control endpoint, which
/// has no flag of its own to document it.
const LONG_ABOUT: &str = r#"A Keystone v3 + Cinder v3 simulator for testing and demos of backup-gateway.

Control endpoint: the Keystone listener (the auth_url's host and port) also
serves /_sim/, to read the call counters and change settings while the
simulator runs. It has no authentication: a test tool, keep it on loopback.
Its own calls are not counted, and faults and chaos spare them.

  GET    /_sim/calls           calls answered, by service, operation and
                               status (0: the connection was cut), as JSON
  DELETE /_sim/calls           reset the counters (204)
  GET    /_sim/settings        backup_duration_ms, token_ttl_ms,
                               fail_reason and chaos (null when off)
  PATCH  /_sim/settings        set any of those, e.g.
                               {"backup_duration_ms": 0, "chaos": null}
                               or {"chaos": {"error_rate": 0.3}} (merged
                               over the chaos in force); a bad field is
                               a 400 and changes nothing
  POST   /_sim/finish-pending  end every creating or deleting backup now
  GET    /_sim/backups/count   backups by status, all projects"#;

/// A Keystone v3 + Cinder v3 simulator for testing and demos of backup-gateway.
#[derive(Debug, Parser)]
#[command(name = "openstack-sim", version, long_about = LONG_ABOUT)]
struct Args {
    /// Address Keystone listens on.
    #[arg(
        long,
        env = "OPENSTACK_SIM_KEYSTONE_LISTEN",
        default_value = "127.0.0.1:5000"
    )]
    keystone_listen: SocketAddr,
    /// Address Cinder listens on.
    #[arg(
        long,
        env = "OPENSTACK_SIM_CINDER_LISTEN",
        default_value = "127.0.0.1:8776"
    )]
    cinder_listen: SocketAddr,
    /// The host name clients reach the simulator by, written in Keystone's
    /// catalog and the clouds.yaml (e.g. the service's name in a compose
    /// file, when it listens on 0.0.0.0); the listen addresses when absent.
    #[arg(long, env = "OPENSTACK_SIM_PUBLIC_HOST")]
    public_host: Option<String>,
    /// JSON file with the tenants (projects, application credentials,
    /// users), volumes, snapshots and quotas to start with; see
    /// sim/examples/seed.json. The two demo tenants when absent.
    #[arg(long, env = "OPENSTACK_SIM_SEED")]
    seed: Option<PathBuf>,
    /// How long a backup stays `creating` (and a deleted one `deleting`),
    /// e.g. `2s`, `500ms`, `1m`.
    #[arg(long, env = "OPENSTACK_SIM_BACKUP_DURATION", default_value = "2s", value_parser = parse_duration)]
    backup_duration: Duration,
    /// Lifetime of issued tokens, e.g. `1h`, `90s`.
    #[arg(long, env = "OPENSTACK_SIM_TOKEN_TTL", default_value = "1h", value_parser = parse_duration)]
    token_ttl: Duration,
    /// Also write the generated clouds.yaml (it holds the tenants' secrets:
    /// only its owner may read it) to this file.
    #[arg(long, env = "OPENSTACK_SIM_CLOUDS_YAML_OUT")]
    clouds_yaml_out: Option<PathBuf>,
    /// Chaos: fraction (0 to 1) of Cinder calls answered
    /// --chaos-error-status with Cinder's error body, without the work.
    #[arg(long, env = "OPENSTACK_SIM_CHAOS_ERROR_RATE", default_value = "0", value_parser = parse_rate)]
    chaos_error_rate: f64,
    /// Chaos: the status of those errors.
    #[arg(long, env = "OPENSTACK_SIM_CHAOS_ERROR_STATUS", default_value_t = 503)]
    chaos_error_status: u16,
    /// Chaos: delay added to a call, e.g. `2s`.
    #[arg(long, env = "OPENSTACK_SIM_CHAOS_LATENCY", value_parser = parse_duration)]
    chaos_latency: Option<Duration>,
    /// Chaos: fraction of calls delayed by --chaos-latency (1: every call).
    #[arg(long, env = "OPENSTACK_SIM_CHAOS_LATENCY_RATE", default_value = "1", value_parser = parse_rate)]
    chaos_latency_rate: f64,
    /// Chaos: fraction of calls whose connection is closed before any work.
    #[arg(long, env = "OPENSTACK_SIM_CHAOS_DROP_BEFORE_RATE", default_value = "0", value_parser = parse_rate)]
    chaos_drop_before_rate: f64,
    /// Chaos: fraction of calls that do the work, then lose their answer.
    #[arg(long, env = "OPENSTACK_SIM_CHAOS_DROP_AFTER_RATE", default_value = "0", value_parser = parse_rate)]
    chaos_drop_after_rate: f64,
    /// Chaos: Keystone's token issue suffers too (Cinder only otherwise).
    #[arg(long, env = "OPENSTACK_SIM_CHAOS_KEYSTONE")]
    chaos_keystone: bool,
    /// Chaos: seed of the random draws, for a reproducible run.
    #[arg(long, env = "OPENSTACK_SIM_CHAOS_SEED")]
    chaos_seed: Option<u64>,
}

impl Args {
    /// The chaos the flags ask for; `None` when every rate is zero.
    fn chaos(&self) -> Option<Chaos> {
        let latency = self.chaos_latency.unwrap_or_default();
        let chaos = Chaos {
            error_rate: self.chaos_error_rate,
            error_status: self.chaos_error_status,
            latency_rate: if latency.is_zero() {
                0.0
            } else {
                self.chaos_latency_rate
            },
            latency,
            drop_before_rate: self.chaos_drop_before_rate,
            drop_after_rate: self.chaos_drop_after_rate,
            keystone: self.chaos_keystone,
            seed: self.chaos_seed,
        };
        let rates = [
            chaos.error_rate,
            chaos.latency_rate,
            chaos.drop_before_rate,
            chaos.drop_after_rate,
        ];
        rates.iter().any(|r| *r > 0.0).then_some(chaos)
    }
}

/// A fraction between 0 and 1.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("`{text}` is not a fraction between 0 and 1")),
    }
}

/// `500ms`, `2s`, `1m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 500ms, 2s, 1m or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in files or pipes.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();

    let seed = match &args.seed {
        Some(path) => Seed::from_json_file(path)?,
        None => Seed::demo(),
    };
    let config = SimConfig {
        backup_duration: args.backup_duration,
        token_ttl: args.token_ttl,
        public_host: args.public_host.clone(),
        ..SimConfig::default()
    };
    let sim = Sim::new(config, seed);
    if let Some(chaos) = args.chaos() {
        tracing::info!(?chaos, "chaos on");
        sim.set_chaos(Some(chaos));
    }
    let running = sim
        .start_on(args.keystone_listen, args.cinder_listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (Keystone) and {} (Cinder)",
                args.keystone_listen, args.cinder_listen
            )
        })?;

    let clouds_yaml = running.clouds_yaml();
    if let Some(path) = &args.clouds_yaml_out {
        write_private(path, &clouds_yaml)
            .with_context(|| format!("writing clouds.yaml to {}", path.display()))?;
    }
    println!("Keystone: {}", running.keystone_url);
    println!("Cinder:   {}", running.cinder_url);
    println!();
    print!("{clouds_yaml}");

    shutdown_signal().await?;
    running.shutdown().await;
    Ok(())
}

/// Writes `text` to `path` readable by its owner only (mode 0600 on Unix,
/// also when the file existed with a wider mode).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())
}

/// Resolves on Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn chaos_flags() {
        let args = Args::parse_from(["openstack-sim"]);
        assert_eq!(args.chaos(), None);
        let args = Args::parse_from([
            "openstack-sim",
            "--chaos-error-rate",
            "0.3",
            "--chaos-latency",
            "2s",
            "--chaos-latency-rate",
            "0.1",
            "--chaos-drop-after-rate",
            "0.05",
            "--chaos-seed",
            "7",
        ]);
        let chaos = args.chaos().expect("chaos on");
        assert_eq!(chaos.error_rate, 0.3);
        assert_eq!(chaos.error_status, 503);
        assert_eq!(chaos.latency, Duration::from_secs(2));
        assert_eq!(chaos.latency_rate, 0.1);
        assert_eq!(chaos.drop_after_rate, 0.05);
        assert_eq!(chaos.seed, Some(7));
        assert!(!chaos.keystone);
        assert!(Args::try_parse_from(["openstack-sim", "--chaos-error-rate", "1.5"]).is_err());
    }
}
