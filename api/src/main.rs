//! The `dynamoi` binary: parses the command line and hands over to [`api::cli`].

fn main() -> std::process::ExitCode {
    api::cli::main()
}
