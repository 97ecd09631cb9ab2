//! The data formats as the real binary reads them, against what 6.0.2 gives for the same
//! files: `tests/data/formats/` holds an env file and a config file in YAML, and a dotenv
//! file; each expected value was read off `python -m proc_wrapper -o -e ... --config ...`
//! (proc_wrapper 6.0.2 with PyYAML 6.0.4 and python-dotenv 1.2.4) running a child that
//! dumps its environment. Offline mode, no services.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Command;

use proc_wrapper::secrets::format::Format;
use procwrapper_tests::wrapper::{bare, child_env, run, stderr};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// `proc_wrapper` with an empty environment (but `PATH`), offline by its option (`-o`), in
/// `tests/data`, with `args` and `vars`.
fn wrapper(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = bare(env!("CARGO_BIN_EXE_proc_wrapper"));
    cmd.current_dir(DATA)
        .arg("-o")
        .args(args)
        .envs(vars.iter().copied());
    cmd
}

fn assert_vars(env: &HashMap<String, String>, expected: &[(&str, &str)]) {
    for (name, value) in expected {
        assert_eq!(
            env.get(*name).map(String::as_str),
            Some(*value),
            "{name} (6.0.2 gives {value:?})"
        );
    }
}

#[test]
fn yaml_env_and_config_files_read_as_yaml_1_1() {
    let env = child_env(&mut wrapper(
        &["-e", "formats/env.yaml", "--config", "formats/config.yaml"],
        &[],
    ));
    assert_vars(
        &env,
        &[
            ("Y1", "TRUE"),
            ("Y2", "TRUE"),
            ("Y3", "FALSE"),
            ("Y4", "FALSE"),
            ("OCT", "511"),
            ("US", "1000"),
            ("SEX", "750"),
            ("E3", "1e3"),
            ("TL", ""),
            ("F", "1000.0"),
            ("SMALL", "1e-05"),
            ("BIG", "123456789012345678901234567890"),
            ("D", "2001-12-14"),
            ("DT", "2001-12-14 21:59:43.100000-05:00"),
            ("NESTED", r#"{"a": true, "b": ["1e3", 1.5]}"#),
            ("Q", "yes"),
            ("QO", "0777"),
            ("INF", "inf"),
            ("NAN", "nan"),
            ("HEX", "31"),
            ("BIN", "b'hello'"),
            ("base", r#"{"x": 1, "y": 2}"#),
            ("MERGED", r#"{"x": 1, "y": 3}"#),
            (
                "TASK_CONFIG",
                r#"{"a": true, "b": 511, "c": 750, "d": "1e3", "e": null, "f": 1000.0, "g": 1e-05, "h": "on"}"#,
            ),
        ],
    );
}

#[test]
fn dotenv_files_read_as_python_dotenv() {
    let env = child_env(&mut wrapper(&["-e", "formats/values.env"], &[]));
    assert_vars(
        &env,
        &[
            ("EXPORTED", "1"),
            // A key without `=` is None in python-dotenv: an empty variable.
            ("NO_VALUE", ""),
            ("EMPTY", ""),
            ("INLINE", "x"),
            ("HASH", "x#y"),
            ("SQ", "a 1 \\n"),
            ("DQ", "a\tb \"q\""),
            ("INTERP", "1-dflt-"),
            ("DOLLAR", "$EXPORTED"),
            // `BROKEN="x" junk` does not parse: skipped, and the next line is read.
            ("AFTER", "ok"),
        ],
    );
    assert!(!env.contains_key("BROKEN"));
}

#[test]
fn resolved_values_in_each_format() {
    let env = child_env(&mut wrapper(
        &[],
        &[
            ("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:~!yaml"),
            ("Y_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:null!json"),
            ("Z_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:yes!yaml"),
            (
                "W_FOR_PROC_WRAPPER_TO_RESOLVE",
                r#"PLAIN:{"a": 0777}!yaml|JP:$.a"#,
            ),
            ("V_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:1e3!yaml"),
            (
                "S_FOR_PROC_WRAPPER_TO_RESOLVE",
                r#"PLAIN:{"n": 1E-5}|JP:$.n"#,
            ),
            (
                "U_FOR_PROC_WRAPPER_TO_RESOLVE",
                "PLAIN:[1e3, 0.00001, 12345678901234567890]!json",
            ),
        ],
    ));
    assert_vars(
        &env,
        &[
            // 6.0.2 keeps the text of a value that parses to None.
            ("X", "~"),
            ("Y", "null"),
            ("Z", "TRUE"),
            ("W", "511"),
            ("V", "1e3"),
            ("S", "1e-05"),
            ("U", "[1000.0, 1e-05, 12345678901234567890]"),
        ],
    );
}

#[test]
fn yaml_output_files_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("env.yml");
    let out = run(wrapper(
        &[
            "-e",
            "formats/env.yaml",
            "--env-output-filename",
            out_file.to_str().unwrap(),
            "--exit-after-writing-variables",
        ],
        &[
            ("RAW_YES", "yes"),
            ("RAW_OCT", "0777"),
            ("RAW_TIME", "12:30"),
        ],
    )
    .args(["--", "true"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&out_file).unwrap();
    let read = Format::Yaml.parse(&text).unwrap();
    // Every variable is text, and reads back as the same text (checked against PyYAML's
    // safe_load too when this was written).
    for (name, value) in [
        ("RAW_YES", "yes"),
        ("RAW_OCT", "0777"),
        ("RAW_TIME", "12:30"),
        ("E3", "1e3"),
        ("TL", ""),
        ("OCT", "511"),
        ("Y1", "TRUE"),
        ("SMALL", "1e-05"),
    ] {
        assert_eq!(read[name], value, "{name} in {text}");
    }
    // Quoted as PyYAML quotes them.
    assert!(text.contains("RAW_YES: 'yes'\n"), "{text}");
    assert!(text.contains("E3: '1e3'\n"), "{text}");
}
