//! Writes the learning curves of a local sweep's finished trials as JSON, for `seedsweep-standin`:
//!
//!     seedsweep-extract-curves seedsweep-state/sst2-6x6 > bench/curves/sst2-6x6.json
//!
//! Reads the state directory only (see `seedsweep_tests::standin::extract`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: seedsweep-extract-curves STATE_DIR > curves.json");
        std::process::exit(2);
    };
    match seedsweep_tests::standin::extract::extract(std::path::Path::new(dir)) {
        Ok(file) => {
            let kept = file.curves.len();
            let left = file.source.trials_left_out.len();
            println!(
                "{}",
                serde_json::to_string_pretty(&file).expect("curves serialize")
            );
            eprintln!("{kept} whole curves; {left} trials left out (not trained to completion)");
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
