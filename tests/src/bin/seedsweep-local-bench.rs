//! The local executor at scale behind `bench/local-scale.sh`; see `seedsweep_tests::bench::local` and
//! docs/benchmarks.md.

use clap::Parser;

fn main() {
    let options = seedsweep_tests::bench::local::Options::parse();
    match seedsweep_tests::bench::local::run(options) {
        Ok(report) => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        ),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
