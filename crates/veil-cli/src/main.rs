//! `veil`: differentially private aggregation over Parquet exports (see the library,
//! `veil_cli`, for how it is put together).

fn main() -> std::process::ExitCode {
    veil_cli::main()
}
