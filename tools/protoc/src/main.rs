//! Prints the path of the `protoc` binary that the `protoc-bin-vendored` crate ships for
//! this platform (Google's release binaries, in a crate on crates.io), so that the Spark
//! Connect client's build script can compile Spark's protocol files on a machine with only
//! a Rust toolchain: `PROTOC=$(scripts/protoc.sh) cargo build --features spark`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match protoc_bin_vendored::protoc_bin_path() {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("no protoc is shipped for this platform: {error}; install your system's protobuf compiler and set PROTOC to its path");
            ExitCode::FAILURE
        }
    }
}
