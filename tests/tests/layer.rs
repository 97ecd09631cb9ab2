//! The Lambda layer zips built by `tests/run.sh` (`make -C extension layers`): their layout
//! and permissions, fully static binaries for the right machine, the exec wrapper script, and
//! the arm64 binary under qemu.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use procwrapper_tests::built_file;
use procwrapper_tests::elf::{EM_AARCH64, EM_X86_64, elf_info, is_fully_static};

/// Extracts a zip with Python's zipfile (which `tests/run.sh` needs anyway); returns the
/// folder and the entries with their Unix modes.
fn extract(zip: &Path) -> (tempfile::TempDir, Vec<(String, u32)>) {
    let dir = tempfile::tempdir().unwrap();
    let script = "import sys, zipfile, os\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        for i in z.infolist():\n\
        \x20   print(i.filename, i.external_attr >> 16)\n\
        \x20   p = z.extract(i, sys.argv[2])\n\
        \x20   os.chmod(p, (i.external_attr >> 16) & 0o7777)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(name, mode)| (name.to_owned(), mode.parse().unwrap()))
        .collect();
    (dir, entries)
}

fn layers() -> [(PathBuf, u16); 2] {
    [
        (built_file("PROC_WRAPPER_TEST_LAYER_X86_64"), EM_X86_64),
        (built_file("PROC_WRAPPER_TEST_LAYER_ARM64"), EM_AARCH64),
    ]
}

#[test]
fn each_layer_holds_the_static_extension_the_exec_wrapper_and_the_bootstrap() {
    for (zip, machine) in layers() {
        let (dir, entries) = extract(&zip);
        let files: Vec<_> = entries
            .iter()
            .filter(|(name, _)| !name.ends_with('/'))
            .collect();
        assert_eq!(files.len(), 3, "{}: {entries:?}", zip.display());
        for (name, mode) in files {
            assert!(
                [
                    "extensions/cloudreactor-extension",
                    "cloudreactor-exec-wrapper",
                    "bootstrap"
                ]
                .contains(&name.as_str()),
                "unexpected {name} in {}",
                zip.display()
            );
            assert_eq!(mode & 0o777, 0o755, "{name} must be executable");
        }
        let bin = dir.path().join("extensions/cloudreactor-extension");
        let (m, _) = elf_info(&bin);
        assert_eq!(m, machine, "{}", zip.display());
        assert!(is_fully_static(&bin), "{} is not static", zip.display());
    }
}

#[test]
fn the_exec_wrapper_of_the_x86_64_layer_resolves_then_runs_the_runtime() {
    let (dir, _) = extract(&layers()[0].0);
    let wrapper = dir.path().join("cloudreactor-exec-wrapper");
    let out = Command::new(&wrapper)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env(
            "GREETING_FOR_PROC_WRAPPER_TO_RESOLVE",
            r#"PLAIN:{"text": "hello"}|JP:$.text"#,
        )
        .args(["/bin/sh", "-c", "echo \"$GREETING\"; exit 5"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let out = Command::new(dir.path().join("extensions/cloudreactor-extension"))
        .env_clear()
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cloudreactor-extension v"));
}

#[test]
fn the_bootstrap_of_the_x86_64_layer_runs_the_handler_named_by_the_function() {
    let (dir, _) = extract(&layers()[0].0);
    let task_root = tempfile::tempdir().unwrap();
    let handler = task_root.path().join("my-handler");
    std::fs::write(&handler, "#!/bin/sh\necho \"$GREETING $1\"; exit 4\n").unwrap();
    std::fs::set_permissions(
        &handler,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bootstrap = dir.path().join("bootstrap");
    let run = |extra: &[(&str, &str)]| {
        Command::new(&bootstrap)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LAMBDA_TASK_ROOT", task_root.path())
            .env(
                "GREETING_FOR_PROC_WRAPPER_TO_RESOLVE",
                r#"PLAIN:{"text": "hello"}|JP:$.text"#,
            )
            .envs(extra.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(&[("_HANDLER", "my-handler")]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello \n");
    let command = format!("{} world", handler.display());
    let out = run(&[
        ("_HANDLER", "ignored"),
        ("PROC_WRAPPER_LAMBDA_BOOTSTRAP_COMMAND", &command),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello world\n");
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("_HANDLER") && err.contains("PROC_WRAPPER_LAMBDA_BOOTSTRAP_COMMAND"),
        "{err}"
    );
}

#[test]
fn the_arm64_extension_runs_under_qemu() {
    let qemu = procwrapper_tests::qemu_aarch64();
    let (dir, _) = extract(&layers()[1].0);
    let out = Command::new(qemu)
        .arg(dir.path().join("extensions/cloudreactor-extension"))
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cloudreactor-extension v"));
    // Outside Lambda it says so and exits 1, rather than hanging.
    let out = Command::new(qemu)
        .arg(dir.path().join("extensions/cloudreactor-extension"))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
