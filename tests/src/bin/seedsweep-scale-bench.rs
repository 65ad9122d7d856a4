//! The scale benchmark behind `bench/scale.sh`; see `seedsweep_tests::bench` and docs/benchmarks.md.

use clap::Parser;

#[tokio::main]
async fn main() {
    let options = seedsweep_tests::bench::Options::parse();
    seedsweep_tests::bench::print_report(seedsweep_tests::bench::run(options).await);
}
