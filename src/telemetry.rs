//! Logging set-up: one `tracing` subscriber for the whole process, compact
//! for people or JSON for log pipelines, filtered by `RUST_LOG` (INFO when
//! unset).

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Compact,
    /// One JSON object per event.
    Json,
}

/// Installs the global subscriber. Calling it twice is harmless (the second
/// call changes nothing), which lets tests call it freely.
pub fn init(format: LogFormat) {
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    // PostgreSQL's notices ("relation ... already exists, skipping" at
    // every start) are not the operator's business unless asked for.
    if std::env::var_os("RUST_LOG").is_none()
        && let Ok(quiet) = "sqlx::postgres::notice=warn".parse()
    {
        filter = filter.add_directive(quiet);
    }
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        // Colours only for a person at a terminal, not in files or pipes.
        LogFormat::Compact => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_ansi(std::io::stdout().is_terminal()),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
    };
}
