//! `lanrelay-load`: the load generator. Parses flags, runs the sweep on a tokio
//! runtime with `--threads` workers, prints the report table (and writes JSON).
#![allow(clippy::disallowed_methods)] // a load generator is I/O through and through: it reads the clock

use clap::Parser;
use lanrelay_load::config::Args;
use lanrelay_load::{report, run};

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let rows = runtime.block_on(run::run(&args))?;
    println!("{}", report::table(&rows));
    if let Some(path) = &args.json {
        run::write_json(path, &args, &rows)?;
        eprintln!("JSON report: {}", path.display());
    }
    Ok(())
}
