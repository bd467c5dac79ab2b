//! `ember`: the local all-in-one server and maintenance commands.
//!
//! `cargo run --release` with no arguments runs `ember serve` on 127.0.0.1:9090
//! with data in `./data`.

use ember_runtime::backend;
mod backfill;
mod compact;
mod self_metrics;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ember: a serverless, Prometheus-compatible monitoring backend (local mode).
#[derive(Debug, Parser)]
#[command(name = "ember", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role (remote write, query API, scraping, rules) in one process.
    Serve(serve::ServeArgs),
    /// Run tests (`ember test rules FILE…`: rule unit tests in promtool's format).
    #[command(subcommand)]
    Test(TestCommand),
    /// Compact every closed hot bucket into Parquet blocks (one pass) and print what was written.
    Compact(compact::CompactArgs),
    /// Import OpenMetrics / Prometheus text files with timestamps (like `promtool tsdb
    /// create-blocks-from openmetrics`) into the configured storage.
    Backfill(backfill::BackfillArgs),
}

#[derive(Debug, Subcommand)]
enum TestCommand {
    /// Run rule unit-test files written for `promtool test rules`.
    Rules {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs rule unit-test files; fails when any test fails.
async fn test_rules(files: Vec<PathBuf>) -> Result<(), String> {
    let mut failed = 0;
    for f in &files {
        let report = ember_rules::run_rule_tests(f).await;
        print!("{report}");
        if !report.passed() {
            failed += 1;
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(format!(
            "{failed} of {} rule test file(s) failed",
            files.len()
        ))
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("EMBER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ember: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli
        .command
        .unwrap_or(Command::Serve(serve::ServeArgs::default()));
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve::run(args).await.map_err(|e| e.to_string()),
            Command::Compact(args) => compact::run(args).await.map_err(|e| e.to_string()),
            Command::Backfill(args) => backfill::run(args).await.map_err(|e| e.to_string()),
            Command::Test(TestCommand::Rules { files }) => test_rules(files).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ember: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Default data directory of the local server.
pub(crate) fn default_data_dir() -> PathBuf {
    backend::default_data_dir()
}
