//! `lanrelay-load`: the load generator. Parses flags, runs the sweep (or the soak) on
//! a tokio runtime with `--threads` workers, prints the report table (and writes
//! JSON). A soak that exceeds a threshold exits with status 1.
#![allow(clippy::disallowed_methods)] // a load generator is I/O through and through: it reads the clock

use clap::Parser;
use lanrelay_load::config::{Args, Scenario};
use lanrelay_load::{report, run, soak};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    if args.scenario == Scenario::Soak {
        let summary = runtime.block_on(soak::soak(&args))?;
        print!("{}", soak::summary_text(&summary));
        if let Some(path) = &args.json {
            let text = serde_json::to_string_pretty(&summary)?;
            std::fs::write(path, text)?;
            eprintln!("JSON report: {}", path.display());
        }
        if !summary.failures.is_empty() {
            std::process::exit(1);
        }
        return Ok(());
    }
    let rows = runtime.block_on(run::run(&args))?;
    println!("{}", report::table(&rows));
    if let Some(path) = &args.json {
        run::write_json(path, &args, &rows)?;
        eprintln!("JSON report: {}", path.display());
    }
    Ok(())
}
