//! `openstack-sim`: runs the Keystone + Cinder simulator standalone, prints
//! where it listens and a `clouds.yaml` for its tenants, and serves until
//! Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use openstack_sim::{Seed, Sim, SimConfig};

/// A Keystone v3 + Cinder v3 simulator for testing and demos of backup-gateway.
#[derive(Debug, Parser)]
#[command(name = "openstack-sim", version)]
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
    /// JSON file with the tenants, volumes and snapshots to start with
    /// (the shape of `Seed`); the two demo tenants when absent.
    #[arg(long, env = "OPENSTACK_SIM_SEED")]
    seed: Option<PathBuf>,
    /// How long a backup stays `creating` (and a deleted one `deleting`),
    /// e.g. `2s`, `500ms`, `1m`.
    #[arg(long, env = "OPENSTACK_SIM_BACKUP_DURATION", value_parser = parse_duration)]
    backup_duration: Option<Duration>,
    /// Lifetime of issued tokens, e.g. `1h`, `90s`.
    #[arg(long, env = "OPENSTACK_SIM_TOKEN_TTL", value_parser = parse_duration)]
    token_ttl: Option<Duration>,
    /// Also write the generated clouds.yaml to this file.
    #[arg(long, env = "OPENSTACK_SIM_CLOUDS_YAML_OUT")]
    clouds_yaml_out: Option<PathBuf>,
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
        .init();
    let args = Args::parse();

    let seed = match &args.seed {
        Some(path) => Seed::from_json_file(path)?,
        None => Seed::demo(),
    };
    let mut config = SimConfig::default();
    if let Some(d) = args.backup_duration {
        config.backup_duration = d;
    }
    if let Some(d) = args.token_ttl {
        config.token_ttl = d;
    }
    let sim = Sim::new(config, seed);
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
        std::fs::write(path, &clouds_yaml)
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
}
