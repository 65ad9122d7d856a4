//! A trial stand-in that replays recorded learning curves through the trainer's interface; see
//! `seedsweep_tests::standin`.

fn main() {
    std::process::exit(seedsweep_tests::standin::main());
}
