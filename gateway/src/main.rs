//! The `gateway` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

/// mimalloc: the gateway builds and drops many small JSON values per record, where it is
/// measurably faster than the system allocator (see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    gateway::cli::main()
}
