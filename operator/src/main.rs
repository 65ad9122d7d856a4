use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    seedsweep_operator::memory::return_large_buffers_to_the_system();
    let cli = seedsweep_operator::cli::Cli::parse();
    match seedsweep_operator::cli::run(cli) {
        Ok(code) => code,
        // `seedsweep plan … | head` closes the pipe early; that is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
