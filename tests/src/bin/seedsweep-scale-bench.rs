//! The scale benchmark behind `bench/scale.sh`; see `seedsweep_tests::bench` and docs/benchmarks.md.

use clap::Parser;

#[tokio::main]
async fn main() {
    let options = seedsweep_tests::bench::Options::parse();
    match seedsweep_tests::bench::run(options).await {
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
