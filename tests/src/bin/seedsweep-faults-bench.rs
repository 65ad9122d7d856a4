//! The fault benchmark behind `bench/faults.sh`; see `seedsweep_tests::faults` and docs/benchmarks.md.

use clap::Parser;

#[tokio::main]
async fn main() {
    let options = seedsweep_tests::faults::bench::Options::parse();
    match seedsweep_tests::faults::bench::run(options).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
