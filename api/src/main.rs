//! The `dynamoi` binary: parses the command line and hands over to [`api::cli`].

/// jemalloc instead of glibc's malloc: under the dashboard load `dynamoi serve` stays near 37 MiB
/// resident instead of 67–70 (BENCHMARKS.md, "The allocator", has the A/B figures).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    api::cli::main()
}
