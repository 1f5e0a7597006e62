//! The `lanrelay` binary: parse flags, set up logging, run until Ctrl-C (or run the
//! `certs` subcommand).

use clap::Parser;
use lanrelay::config::{Args, Command, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "lanrelay=info".into()),
        )
        // Logs on stderr (as documented); stdout carries the URLs and QR codes.
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let command = args.command.clone();
    let config = Config::from(args);
    match command {
        Some(Command::Certs { renew }) => {
            print!("{}", lanrelay::certs_command(&config, renew)?);
            Ok(())
        }
        None => lanrelay::run(config, shutdown_signal()).await,
    }
}

/// Ctrl-C (SIGINT) or SIGTERM (systemd, `docker stop`): the server shuts down cleanly
/// (recordings' files are finished).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
