//! The `cgate` binary: hands the command line to the library and exits with its code.

fn main() {
    std::process::exit(cgate::main());
}
