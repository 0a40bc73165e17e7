//! The `cgate` binary: parses the command line and turns the outcome into an exit code.
fn main() {}
