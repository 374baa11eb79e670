//! The `gateway` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

/// jemalloc: the gateway builds and drops many small JSON values per record, most of them
/// freed on another thread than the one that made them (a record is parsed on a request's
/// thread and freed by the writer's). jemalloc's thread caches take such frees without
/// contention; mimalloc, used before, spent about a quarter of a stream's CPU in them, and
/// the system allocator more (the README's *Speed*, session 14).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    gateway::cli::main()
}
