//! The `formbridge` binary: parses the command line and runs the chosen subcommand.

fn main() {}
