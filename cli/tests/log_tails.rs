//! What the log tails of a final update hold, through the real `proc_wrapper` binary and the
//! fake API server: resolved secret values replaced by `[REDACTED]` unless `--log-secrets`
//! (README "Differences" D42), and the byte cap `--max-log-tail-bytes` (D43). The child's own
//! output is never changed: only what is sent to the API server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use procwrapper_tests::fake_api::{FakeApi, Recorded};
use procwrapper_tests::moto::Moto;
use procwrapper_tests::wrapper::{reporting, run, stderr, stdout};
use serde_json::Value;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proc_wrapper");

/// What the secret file holds; a child that prints it and fails.
const SECRET: &str = "hunter2-from-a-file";
const PRINT_AND_FAIL: &str =
    r#"echo "out: password=$PASSWORD"; echo "err: $PASSWORD." >&2; exit 3"#;

/// `proc_wrapper` pointed at `api`, sending up to 10 lines on failure, with `PASSWORD`
/// resolved from a file of `dir` that holds [`SECRET`].
fn wrapper(api: &FakeApi, dir: &Path) -> Command {
    let file = dir.join("password.txt");
    std::fs::write(&file, SECRET).unwrap();
    let mut cmd = reporting(BIN, &api.url);
    cmd.env("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "5")
        .env("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "1")
        .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "10")
        .env("PROC_WRAPPER_RESOLVE_SECRETS", "TRUE")
        .env(
            "PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE",
            format!("file://{}", file.display()),
        );
    cmd
}

/// The body of the final update (the last request, which must be one).
fn final_body(api: &FakeApi) -> Value {
    let requests = api.requests();
    let last = requests.last().expect("requests");
    assert!(last.is_final(), "{requests:#?}");
    last.body.clone()
}

/// A tail of `body`, as text (`None` when it was not sent).
fn tail<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// Everything sent to the API server, as JSON text.
fn everything_sent(requests: &[Recorded]) -> String {
    requests
        .iter()
        .map(|r| r.body.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `cmd` with `script` as its command; asserts that the child failed (exit 3).
fn run_failing(cmd: &mut Command, script: &str) -> Output {
    let out = run(cmd.args(["--", "sh", "-c", script]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    out
}

#[test]
fn resolved_secrets_are_redacted_from_both_tails() {
    let dir = tempfile::tempdir().unwrap();
    // Apart: the debug and the error tail.
    let api = FakeApi::start();
    let out = run_failing(
        wrapper(&api, dir.path()).arg("--separate-stdout-and-stderr-logs"),
        PRINT_AND_FAIL,
    );
    let body = final_body(&api);
    assert_eq!(body["status"], "FAILED");
    assert_eq!(
        tail(&body, "debug_log_tail"),
        Some("out: password=[REDACTED]\n")
    );
    assert_eq!(tail(&body, "error_log_tail"), Some("err: [REDACTED].\n"));
    let sent = everything_sent(&api.requests());
    assert!(!sent.contains(SECRET), "{sent}");
    // The child's output itself passes through as it wrote it.
    assert_eq!(stdout(&out), format!("out: password={SECRET}\n"));
    assert!(stderr(&out).contains(&format!("err: {SECRET}.\n")));

    // Merged (the default): one tail.
    let api = FakeApi::start();
    run_failing(&mut wrapper(&api, dir.path()), PRINT_AND_FAIL);
    let body = final_body(&api);
    assert_eq!(
        tail(&body, "debug_log_tail"),
        Some("out: password=[REDACTED]\nerr: [REDACTED].\n")
    );
    assert!(body.get("error_log_tail").is_none(), "{body}");
}

#[test]
fn log_secrets_sends_the_tails_as_the_child_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    run_failing(
        wrapper(&api, dir.path()).args(["--log-secrets", "--separate-stdout-and-stderr-logs"]),
        PRINT_AND_FAIL,
    );
    let body = final_body(&api);
    assert_eq!(
        tail(&body, "debug_log_tail"),
        Some(format!("out: password={SECRET}\n").as_str())
    );
    assert_eq!(
        tail(&body, "error_log_tail"),
        Some(format!("err: {SECRET}.\n").as_str())
    );
    // The variable does the same.
    let api = FakeApi::start();
    run_failing(
        wrapper(&api, dir.path()).env("PROC_WRAPPER_LOG_SECRETS", "TRUE"),
        PRINT_AND_FAIL,
    );
    let body = final_body(&api);
    assert!(
        tail(&body, "debug_log_tail").is_some_and(|t| t.contains(SECRET)),
        "{body}"
    );
}

#[test]
fn plain_and_short_values_are_not_redacted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pin.txt"), "12345").unwrap();
    let api = FakeApi::start();
    run_failing(
        wrapper(&api, dir.path())
            .env(
                "SHOWN_FOR_PROC_WRAPPER_TO_RESOLVE",
                "PLAIN:plain-value-shown",
            )
            .env(
                "PIN_FOR_PROC_WRAPPER_TO_RESOLVE",
                format!("file://{}", dir.path().join("pin.txt").display()),
            ),
        r#"echo "$SHOWN pin=$PIN pw=$PASSWORD"; exit 3"#,
    );
    let body = final_body(&api);
    // PLAIN text is in the configuration already; five characters hide nothing worth it.
    assert_eq!(
        tail(&body, "debug_log_tail"),
        Some("plain-value-shown pin=12345 pw=[REDACTED]\n")
    );
}

/// An env location (`PROC_WRAPPER_ENV_LOCATIONS`) from Secrets Manager, the usual way to bring
/// many secrets at once, is hidden like a variable to resolve; a JSON secret is hidden whole
/// and by each of its strings.
#[test]
fn secrets_from_env_locations_and_secrets_manager_are_redacted() {
    let moto = Moto::connect();
    let env_file = moto.secret_string(
        &Moto::unique("tails-env"),
        "DB_PASSWORD=db-password-from-sm\nDB_HOST=db\n",
    );
    let json = moto.secret_string(
        &Moto::unique("tails-json"),
        r#"{"user": "admin", "token": "token-from-sm-json"}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    run_failing(
        wrapper(&api, dir.path())
            .envs(moto.env())
            .env("PROC_WRAPPER_ENV_LOCATIONS", &env_file)
            .env("CREDS_FOR_PROC_WRAPPER_TO_RESOLVE", &json),
        r#"echo "db $DB_PASSWORD at $DB_HOST"; echo "creds $CREDS"; echo "user admin"; exit 3"#,
    );
    let body = final_body(&api);
    assert_eq!(
        tail(&body, "debug_log_tail"),
        Some("db [REDACTED] at db\ncreds [REDACTED]\nuser admin\n")
    );
    let sent = everything_sent(&api.requests());
    for value in ["db-password-from-sm", "token-from-sm-json"] {
        assert!(!sent.contains(value), "{value} was sent: {sent}");
    }
}

/// 40 lines `line NN of the output` (22 bytes each with the line ending), then exit 3.
const FORTY_LINES: &str = r#"for i in $(seq 10 49); do echo "line $i of the output"; done; exit 3"#;

#[test]
fn the_byte_cap_keeps_whole_lines_from_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let full: String = (10..50)
        .map(|i| format!("line {i} of the output\n"))
        .collect();
    let by_option = |cmd: &mut Command| {
        cmd.args(["--max-log-tail-bytes", "100"]);
    };
    let by_variable = |cmd: &mut Command| {
        cmd.env("PROC_WRAPPER_MAX_LOG_TAIL_BYTES", "100");
    };
    for (how, set) in [
        ("option", &by_option as &dyn Fn(&mut Command)),
        ("variable", &by_variable),
    ] {
        let api = FakeApi::start();
        let mut cmd = wrapper(&api, dir.path());
        cmd.env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "50");
        set(&mut cmd);
        let out = run_failing(&mut cmd, FORTY_LINES);
        // The output passes through whole.
        assert_eq!(stdout(&out), full, "{how}");
        let body = final_body(&api);
        let sent = tail(&body, "debug_log_tail").unwrap();
        assert!(sent.len() <= 100, "{how}: {} bytes", sent.len());
        // 4 lines of 22 bytes fit in 100, 5 would not; each is whole.
        assert_eq!(
            sent,
            "line 46 of the output\nline 47 of the output\nline 48 of the output\nline 49 of the output\n",
            "{how}"
        );
    }
}

#[test]
fn the_byte_cap_counts_the_redacted_text_and_cuts_a_long_last_line() {
    let dir = tempfile::tempdir().unwrap();
    // Redacted, each line takes 23 bytes ("pw [REDACTED] number N\n"): 3 fit in 80. As
    // written (the value has 19 bytes), the lines take 32 bytes: only 2 would fit.
    let api = FakeApi::start();
    run_failing(
        wrapper(&api, dir.path()).args(["--max-log-tail-bytes", "80"]),
        r#"for i in 1 2 3 4 5; do echo "pw $PASSWORD number $i"; done; exit 3"#,
    );
    assert_eq!(
        tail(&final_body(&api), "debug_log_tail"),
        Some("pw [REDACTED] number 3\npw [REDACTED] number 4\npw [REDACTED] number 5\n")
    );
    // A last line longer than the cap: its last bytes, from a character boundary (each é
    // takes 2 bytes: the last 10 bytes begin inside one, so 9 are kept).
    let api = FakeApi::start();
    run_failing(
        wrapper(&api, dir.path()).args(["--max-log-tail-bytes", "10"]),
        r#"echo first; echo "a long last line that ends in ééééé"; exit 3"#,
    );
    assert_eq!(tail(&final_body(&api), "debug_log_tail"), Some("éééé\n"));
}

#[test]
fn an_invalid_byte_cap_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let script = format!("touch {}", ran.display());
    for bad in ["abc", "-5", "1.5"] {
        for (how, named) in [
            ("option", "--max-log-tail-bytes"),
            ("variable", "PROC_WRAPPER_MAX_LOG_TAIL_BYTES"),
        ] {
            let api = FakeApi::start();
            let mut cmd = wrapper(&api, dir.path());
            if how == "option" {
                cmd.args(["--max-log-tail-bytes", bad]);
            } else {
                cmd.env("PROC_WRAPPER_MAX_LOG_TAIL_BYTES", bad);
            }
            let out = run(cmd.args(["--", "sh", "-c", &script]));
            let log = stderr(&out);
            assert_eq!(out.status.code(), Some(78), "{bad} ({how}): {log}");
            assert!(log.contains(named), "{bad} ({how}) is not named: {log}");
            assert!(log.contains(bad), "{bad} ({how}): {log}");
            assert!(!ran.exists(), "{bad} ({how}): the command ran");
            assert!(api.requests().is_empty(), "{bad} ({how})");
        }
    }
    // -1 lifts the cap; 0 sends no tail.
    let api = FakeApi::start();
    run_failing(
        wrapper(&api, dir.path()).args(["--max-log-tail-bytes", "-1"]),
        "echo kept; exit 3",
    );
    assert_eq!(tail(&final_body(&api), "debug_log_tail"), Some("kept\n"));
    let api = FakeApi::start();
    run_failing(
        wrapper(&api, dir.path()).args(["--max-log-tail-bytes", "0"]),
        "echo dropped; exit 3",
    );
    let body = final_body(&api);
    assert!(body.get("debug_log_tail").is_none(), "{body}");
}
