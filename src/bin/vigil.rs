//! `vigil`: the command line client of vigild. Thin: everything lives in `vigil::cli`.

fn main() -> std::process::ExitCode {
    vigil::cli::main()
}
