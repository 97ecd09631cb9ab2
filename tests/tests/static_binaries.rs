//! The static release binaries (built by `tests/run.sh` with `cli/release.sh`'s settings):
//! fully static, runnable in an empty environment and in a root file system without libc,
//! and the arm64 one under qemu.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use procwrapper_tests::elf::{EM_AARCH64, EM_X86_64, PT_DYNAMIC, PT_INTERP, elf_info};

fn binary(var: &str) -> PathBuf {
    procwrapper_tests::built_file(var)
}

#[test]
fn both_binaries_are_fully_static() {
    for (var, machine) in [
        ("PROC_WRAPPER_TEST_STATIC_X86_64", EM_X86_64),
        ("PROC_WRAPPER_TEST_STATIC_AARCH64", EM_AARCH64),
    ] {
        let (m, types) = elf_info(&binary(var));
        assert_eq!(m, machine, "{var}");
        assert!(
            !types.contains(&PT_INTERP),
            "{var} asks for a dynamic loader"
        );
        assert!(!types.contains(&PT_DYNAMIC), "{var} has a dynamic section");
    }
}

#[test]
fn the_x86_64_binary_runs_in_an_empty_environment() {
    let out = Command::new("env")
        .arg("-i")
        .arg(binary("PROC_WRAPPER_TEST_STATIC_X86_64"))
        .args(["-o", "--", "/bin/sh", "-c", "echo \"PATH=$PATH\"; exit 3"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed with exit code 3"));
}

/// A root file system that holds nothing but the wrapper and a static test program.
#[test]
fn the_x86_64_binary_runs_in_a_root_without_libc() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("exit3.c");
    std::fs::write(
        &src,
        "#include <unistd.h>\nint main(void) { write(1, \"static\\n\", 7); return 3; }\n",
    )
    .unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let status = Command::new("python3")
        .args([
            "-m",
            "ziglang",
            "cc",
            "-target",
            "x86_64-linux-musl",
            "-static",
            "-O2",
            "-o",
        ])
        .arg(root.join("exit3"))
        .arg(&src)
        .status()
        .expect("zig (PyPI ziglang, installed by tests/run.sh) builds the test program");
    assert!(status.success());
    std::fs::copy(
        binary("PROC_WRAPPER_TEST_STATIC_X86_64"),
        root.join("proc_wrapper"),
    )
    .unwrap();
    let entries: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert_eq!(entries.len(), 2, "the root holds only the two programs");
    let out = Command::new(if Path::new("/usr/sbin/chroot").exists() {
        "/usr/sbin/chroot"
    } else {
        "chroot"
    })
    .arg(&root)
    .args(["/proc_wrapper", "-o", "-t", "30", "--", "/exit3"])
    .env_clear()
    .output()
    .expect("chroot runs (as root)");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "static\n");
}

#[test]
fn the_arm64_binary_runs_under_qemu() {
    let qemu = procwrapper_tests::qemu_aarch64();
    let bin = binary("PROC_WRAPPER_TEST_STATIC_AARCH64");
    let out = Command::new(qemu).arg(&bin).arg("-v").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("CloudReactor Rust proc_wrapper v"));
    // The child is a host program, which the kernel runs natively.
    let out = Command::new(qemu)
        .arg(&bin)
        .args(["-o", "--", "/bin/sh", "-c", "exit 4"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ECS/Docker example: its task run by the static wrapper as Docker would start it, in
/// the exec form and in the shell form of `CMD` (which Docker wraps in `/bin/sh -c`).
#[test]
fn the_docker_example_works_in_exec_and_shell_form() {
    let task = concat!(env!("CARGO_MANIFEST_DIR"), "/../cli/examples/ecs/task.sh");
    let bin = binary("PROC_WRAPPER_TEST_STATIC_X86_64");
    let shell_form = format!("{task} --verbose | tr a-z A-Z");
    for (argv, expected) in [
        (vec![task, "--verbose"], "step 3 done\n"),
        (vec!["/bin/sh", "-c", shell_form.as_str()], "STEP 3 DONE\n"),
    ] {
        let out = Command::new(&bin)
            .env_clear()
            .env("PROC_WRAPPER_OFFLINE_MODE", "TRUE")
            .env("PATH", "/usr/bin:/bin")
            .args(&argv)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.ends_with(expected), "{argv:?}: {stdout}");
    }
}

#[test]
fn the_ecs_task_definition_example_is_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cli/examples/ecs/task-definition.json"
    );
    let def: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let env = def["containerDefinitions"][0]["environment"]
        .as_array()
        .unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for var in env {
        let name = var["name"].as_str().unwrap();
        let base = name.trim_end_matches("_FOR_PROC_WRAPPER_TO_RESOLVE");
        if base.starts_with("PROC_WRAPPER_") {
            assert!(readme.contains(base), "{base} is not documented");
        }
    }
}
