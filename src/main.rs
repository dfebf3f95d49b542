//! The `backup-gateway` command line. It only parses arguments and calls
//! into the library (`lib.rs`), so that tests start the gateway exactly as
//! this binary does.

use std::path::PathBuf;

use anyhow::Context;
use backup_gateway::{Application, api, config::Config, config_file, demo::Demo, store, telemetry};
use clap::{Parser, Subcommand};
use secrecy::SecretString;

/// Makes OpenStack Cinder backups from volume snapshots and tracks each one as a job.
#[derive(Debug, Parser)]
#[command(name = "backup-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and run the worker.
    Serve {
        /// Run on embedded defaults: an in-process OpenStack simulator with
        /// two demo tenants, a fresh SQLite store of its own (any
        /// --database-url is not used), and printed caller tokens.
        #[arg(long)]
        demo: bool,
        /// The demo's folder: its store, clouds.yaml, tokens (`demo.env`)
        /// and lock. Only with --demo.
        #[arg(long, default_value = backup_gateway::demo::DEFAULT_DEMO_DATA, requires = "demo")]
        demo_data: PathBuf,
        #[command(flatten)]
        config: Config,
    },
    /// Check the configuration (flags, environment, --config file,
    /// clouds.yaml, tenant map, key source) without serving; exit 1 with a
    /// message naming the setting at fault.
    CheckConfig {
        #[command(flatten)]
        config: Config,
    },
    /// Print a caller token of TENANT with every scope, signed with the
    /// gateway's --jwt-secret and for its issuer and audience (same flags,
    /// environment and --config file as `serve`): for demos and trials,
    /// e.g. `docker compose exec gateway backup-gateway token --for tenant-a`.
    Token {
        /// The tenant (the tenant claim's value).
        #[arg(long = "for", value_name = "TENANT")]
        tenant: String,
        /// How long the token is valid.
        #[arg(long, default_value = "1h", value_parser = backup_gateway::config::parse_duration)]
        valid_for: std::time::Duration,
        #[command(flatten)]
        config: Config,
    },
    /// Create or upgrade the job store's schema, then exit.
    Migrate {
        /// Job store: `sqlite://PATH` or
        /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
        #[arg(long, env = "BACKUP_GATEWAY_DATABASE_URL", default_value = backup_gateway::config::DEFAULT_DATABASE_URL, hide_env_values = true)]
        database_url: SecretString,
        /// Log format: `compact` or `json`.
        #[arg(long, env = "BACKUP_GATEWAY_LOG_FORMAT", default_value = "compact")]
        log_format: telemetry::LogFormat,
        /// The TOML file of `serve`'s settings (its `database_url` and
        /// `log_format` apply here).
        #[arg(long = "config", env = "BACKUP_GATEWAY_CONFIG", value_name = "FILE")]
        config_file: Option<PathBuf>,
    },
    /// Probe the local gateway's `/healthz` (a container's HEALTHCHECK: the
    /// image has no curl); exit 0 when it answers 200, 1 otherwise.
    Healthcheck {
        /// The address the gateway listens on; an unspecified one
        /// (`0.0.0.0`, `[::]`) is probed on loopback.
        #[arg(long, env = "BACKUP_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = backup_gateway::config::parse_duration)]
        timeout: std::time::Duration,
        /// The TOML file of `serve`'s settings (its `listen` applies here).
        #[arg(long = "config", env = "BACKUP_GATEWAY_CONFIG", value_name = "FILE")]
        config_file: Option<PathBuf>,
    },
    /// Print the OpenAPI document (JSON) generated from the code.
    Openapi {
        /// Write it to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Runs the command; an error is printed as one line of causes (never a
/// stack trace, whatever `RUST_BACKTRACE` says) and the exit status is 1.
fn main() -> std::process::ExitCode {
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("backup-gateway: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("backup-gateway: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backup-gateway: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line, with the settings of `--config FILE` (if any) as the
/// defaults of `serve` and `check-config`.
fn parse_command_line() -> anyhow::Result<Cli> {
    use clap::{Args, CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    // The commands that read settings; the others never read the file.
    const READERS: [&str; 5] = ["serve", "check-config", "token", "migrate", "healthcheck"];
    let reads_settings = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|name| READERS.contains(&name));
    let mut from_file = None;
    let flags = Config::augment_args(clap::Command::new("serve"));
    if reads_settings && let Some(path) = config_file::config_path(&args) {
        let settings = config_file::read_settings(&path, &flags)?;
        for name in READERS {
            command = config_file::with_defaults(command, name, &settings, &args);
        }
        from_file = Some((path, settings));
    }
    let matches = match command.try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(e) => {
            // A bad value that came from the file is named by the file and
            // its key, not by the flag it stood in for.
            if let Some((path, settings)) = &from_file
                && let Some(key) = config_file::bad_setting(&e, &flags, settings, &args)
            {
                // The parser's reason, up to its usage hint, on one line.
                let reason = e.to_string();
                let reason: Vec<&str> = reason
                    .lines()
                    .take_while(|line| !line.trim().is_empty())
                    .map(str::trim)
                    .collect();
                anyhow::bail!(
                    "--config {}: `{key}`: {}",
                    path.display(),
                    reason.join(" ").trim_start_matches("error: ")
                );
            }
            e.exit()
        }
    };
    Ok(Cli::from_arg_matches(&matches)?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            demo,
            demo_data,
            mut config,
        } => {
            config.resolve_secret_files();
            telemetry::init(config.log_format);
            if demo {
                // The port first: a second demo started by mistake stops
                // here, before it touches the first one's data/.
                let listener = Application::bind(&config).await?;
                let demo = Demo::start(&mut config, &demo_data).await?;
                let app = Application::build_on(config, listener).await?;
                demo.announce(app.address())?;
                app.run_until_stopped().await
            } else {
                Application::build(config).await?.run_until_stopped().await
            }
        }
        Command::Migrate {
            database_url,
            log_format,
            config_file: _,
        } => {
            telemetry::init(log_format);
            store::connect(&store::StoreOptions {
                url: database_url,
                pool_size: 1,
            })
            .await?;
            tracing::info!("the job store is ready: its schema is at the latest migration");
            Ok(())
        }
        Command::Token {
            tenant,
            valid_for,
            mut config,
        } => {
            config.resolve_secret_files();
            let minter = backup_gateway::demo::TokenMinter::new(&config)?;
            println!(
                "{}",
                minter.token(&tenant, &format!("token-of-{tenant}"), valid_for)?
            );
            Ok(())
        }
        Command::CheckConfig { mut config } => {
            config.resolve_secret_files();
            let summary = backup_gateway::check_config(&config)?;
            println!("{summary}");
            Ok(())
        }
        Command::Healthcheck {
            listen,
            timeout,
            config_file: _,
        } => healthcheck(listen, timeout).await,
        Command::Openapi { output } => {
            let text = api::openapi_json()?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display())),
                None => {
                    // A reader that stops early (`| head`) is no failure.
                    use std::io::Write;
                    match std::io::stdout().lock().write_all(text.as_bytes()) {
                        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                            Err(e).context("writing the document")
                        }
                        _ => Ok(()),
                    }
                }
            }
        }
    }
}

/// `GET /healthz` on the gateway listening on `listen`.
async fn healthcheck(
    mut listen: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    if listen.ip().is_unspecified() {
        listen.set_ip(match listen {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{listen}/healthz");
    let answer = reqwest::Client::builder()
        .timeout(timeout)
        // The local gateway, never through a proxy of the environment.
        .no_proxy()
        .build()?
        .get(&url)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                anyhow::anyhow!("{url} did not answer within {timeout:?}")
            } else {
                anyhow::anyhow!("{url} could not be reached (is the gateway running?)")
            }
        })?;
    anyhow::ensure!(
        answer.status().is_success(),
        "{url} answered {}",
        answer.status()
    );
    Ok(())
}
