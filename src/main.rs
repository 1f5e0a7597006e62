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
        None => {
            lanrelay::run(config, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
        }
    }
}
