//! The local executor at scale behind `bench/local-scale.sh`; see `seedsweep_tests::bench::local` and
//! docs/benchmarks.md.

use clap::Parser;

fn main() {
    let options = seedsweep_tests::bench::local::Options::parse();
    seedsweep_tests::bench::print_report(seedsweep_tests::bench::local::run(options));
}
