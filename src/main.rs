//! The `aimate` command. All logic lives in the library; see `aimate --help`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aimate::main()
}
