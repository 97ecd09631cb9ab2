//! `proc_wrapper`: the command-line entry point. All the work is in [`proc_wrapper_cli`].

fn main() {
    std::process::exit(proc_wrapper_cli::main_with_args(std::env::args_os()));
}
