//! `bench-driver`: the measuring half of `bench/run` (see BENCHMARKS.md).
//!
//! Starts `openstack-sim` and `backup-gateway serve` (release builds, on
//! loopback, a fresh SQLite store each round), loads them from this
//! process, and prints each figure of the performance table with the
//! baseline it is compared with, measured in the same round. Rounds repeat
//! every measurement and alternate the order of each pair, so that a noisy
//! moment on the machine does not favour one side.

mod cloud;
mod figures;
mod load;
mod procs;

use std::{path::PathBuf, time::Duration};

use clap::Parser;

/// Measures backup-gateway against the simulator and prints the table of
/// BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "bench-driver")]
pub struct Args {
    /// The gateway binary (a release build).
    #[arg(long, default_value = "target/release/backup-gateway")]
    pub gateway_bin: PathBuf,
    /// The simulator binary (a release build).
    #[arg(long, default_value = "target/release/openstack-sim")]
    pub sim_bin: PathBuf,
    /// Short measurements: the scale figures once, the others in each round.
    #[arg(long)]
    pub quick: bool,
    /// Rounds of every measurement.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Tenants of the scale figures (each a project and a clouds.yaml entry).
    #[arg(long, default_value_t = 100)]
    pub tenants: usize,
    /// Running jobs of the scale figures, spread over the tenants.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: usize,
    /// Worker cycles over which resident memory is followed (default: 200,
    /// 50 with --quick).
    #[arg(long)]
    pub cycles: Option<usize>,
    /// Seconds of each read-throughput measurement (default: 5, 2 with
    /// --quick).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Creates of each create-throughput measurement, per side (default:
    /// 5000, 2000 with --quick).
    #[arg(long)]
    pub creates: Option<usize>,
    /// Folder for the rounds' stores, seeds and logs (kept); a new folder
    /// under the system's temp dir when absent.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

impl Args {
    fn cycles(&self) -> usize {
        self.cycles.unwrap_or(if self.quick { 50 } else { 200 })
    }

    fn seconds(&self) -> Duration {
        Duration::from_secs(self.seconds.unwrap_or(if self.quick { 2 } else { 5 }))
    }

    fn creates(&self) -> usize {
        self.creates.unwrap_or(if self.quick { 2000 } else { 5000 })
    }

    /// Whether round `round` (from 0) measures the scale figures.
    fn scale_in(&self, round: usize) -> bool {
        !self.quick || round == 0
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = figures::run(&args).await {
        eprintln!("bench-driver: {e:#}");
        std::process::exit(1);
    }
}
