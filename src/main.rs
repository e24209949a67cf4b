//! The `edgessl` command: a thin shell over the library.

fn main() -> std::process::ExitCode {
    edgessl::cli::main()
}
