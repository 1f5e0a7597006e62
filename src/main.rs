//! The `lanrelay` binary: parse flags, set up logging, run until Ctrl-C.

use clap::Parser;
use lanrelay::config::{Args, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "lanrelay=info".into()),
        )
        .init();
    let config = Config::from(Args::parse());
    lanrelay::run(config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
