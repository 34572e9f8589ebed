//! `points`: a headless client of the points ledger, built on `points-sdk` alone.
//!
//! Exit codes: 0 ok, 1 error, 2 insufficient points. The session token is read from `--token`
//! or `POINTS_TOKEN` and is never printed or logged.

mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A headless client of the points ledger: balance, prices, charged jobs and pending charges.
#[derive(Parser)]
#[command(name = "points", version)]
pub struct Cli {
    /// The ledger's base URL: https, or http on a loopback host only.
    #[arg(long, env = "POINTS_API_URL", global = true)]
    pub base_url: Option<String>,

    /// The session token (bearer). Never printed.
    #[arg(long, env = "POINTS_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,

    /// The host's id of the signed-in account (optional; pending charges are bound to it, or
    /// to the token's JWT subject).
    #[arg(long, env = "POINTS_ACCOUNT", global = true)]
    pub account: Option<String>,

    /// The directory of the journal of pending charges.
    #[arg(
        long,
        env = "POINTS_JOURNAL",
        default_value = "points-journal",
        global = true
    )]
    pub journal: PathBuf,

    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Prints the balance and its totals.
    Balance,
    /// Prints the price of one use of a service and whether the balance covers it.
    Cost {
        /// The service, as the ledger's price table names it (`compose`, `tts`, ...).
        service: String,
        /// Seconds of media, for services priced by duration.
        seconds: Option<f64>,
    },
    /// Runs a (trivial) job and charges it: pre-check, work, journal, send.
    Run {
        /// The service the job is charged as.
        service: String,
        /// The job's key: the charge is sent under `<service>:<key>`, so the same job run
        /// again is charged once (default: a random key).
        #[arg(long)]
        key: Option<String>,
        /// Seconds of media, for services priced by duration.
        #[arg(long)]
        seconds: Option<f64>,
        /// Makes the work fail: nothing is charged.
        #[arg(long)]
        fail: bool,
    },
    /// Lists the signed-in account's pending and refused charges, and counts the others'.
    Pending,
    /// Sends the pending charges once and prints what became of them.
    Sync,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let json = cli.json;
    match commands::execute(cli).await {
        Ok(code) => code,
        Err(failure) => {
            output::failure(json, &failure);
            failure.exit_code()
        }
    }
}
