//! `classproof-upstream`: the reference receiver (see `classproof::cli::upstream`).

use std::process::ExitCode;

use clap::Parser;
use classproof::cli::upstream;

fn main() -> ExitCode {
    let cli = upstream::Cli::parse();
    classproof::logging::init();
    match upstream::main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("classproof-upstream: {e:#}");
            ExitCode::from(2)
        }
    }
}
