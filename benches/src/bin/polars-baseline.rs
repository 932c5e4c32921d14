//! Runs one plain-Polars baseline on a file, for measuring peak memory with
//! `/usr/bin/time -v`: `polars-baseline floor|pairs|bounded|bounded-streaming PATH`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(which), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: polars-baseline floor|pairs|bounded|bounded-streaming PATH");
        return ExitCode::from(2);
    };
    let path = PathBuf::from(path);
    let result = match which.as_str() {
        "floor" => veil_bench::polars_floor(&path),
        "bounded" => veil_bench::polars_bounded(&path),
        "bounded-streaming" => veil_bench::polars_bounded_streaming(&path),
        "pairs" => veil_bench::polars_pairs(&path),
        other => {
            eprintln!("unknown baseline {other:?}: floor, pairs, bounded or bounded-streaming");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(frame) => {
            println!("{} groups", frame.height());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
