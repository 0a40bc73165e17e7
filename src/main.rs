//! The `cgate` binary: hands the command line to `cgate::cli` and exits with its code.

fn main() {
    std::process::exit(cgate::cli::main());
}
