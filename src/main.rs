//! The `aimate` command. All logic lives in the library; see `aimate --help`.

fn main() -> std::process::ExitCode {
    aimate::main()
}
