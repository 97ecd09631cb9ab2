//! Links `proc_wrapper` as a position-dependent executable on Linux: the dynamic loader then
//! has no relocations to apply to its own code and data at start-up, which saves about a
//! megabyte of resident memory and a fraction of a millisecond per run (README "Differences"
//! D40; `tests/bench/overhead.sh` measures it).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
