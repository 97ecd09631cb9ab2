//! Security properties of the real `proc_wrapper` binary (see SECURITY.md): secret values, the
//! API key and the Rollbar token never reach its output unless `--log-secrets` is given, files
//! of resolved secrets are private, the status listener is on loopback only, and resolved
//! values reach the command only through its environment, never through a shell's parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use procwrapper_tests::fake_api::{FakeApi, Fault, TASK_UUID};
use procwrapper_tests::moto::Moto;
use procwrapper_tests::net::{free_udp_port, udp_addresses_in};
use procwrapper_tests::wrapper::{assert_absent, bare, printed, reporting, run, stdout};

/// The API key, the Rollbar token and the secret values of these tests: finding any of them in
/// the wrapper's own output is a leak.
const API_KEY: &str = "key-5d0c7a9e1f";
const ROLLBAR_TOKEN: &str = "rbtok-8b3e2d61";
const PLAIN_VALUE: &str = "sv-plain-3f9a71";
const JSON_VALUE: &str = "sv-json-c02e4b";
const FILE_VALUE: &str = "sv-file-7d15e8";
const ENV_FILE_VALUE: &str = "sv-envfile-a6b390";
const FAILING_VALUE: &str = "sv-fail-91c3e7";

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_proc_wrapper");

/// `proc_wrapper` with an empty environment but `PATH`.
fn wrapper() -> Command {
    bare(BIN)
}

/// `proc_wrapper` in offline mode, logging at DEBUG level (where most could leak).
fn offline() -> Command {
    let mut cmd = procwrapper_tests::wrapper::offline(BIN);
    cmd.env("PROC_WRAPPER_LOG_LEVEL", "DEBUG");
    cmd
}

/// Fails the test if anything `out` printed contains one of `secrets`.
fn assert_hidden(out: &Output, secrets: &[&str], case: &str) {
    assert_absent(&printed(out), secrets, case);
}

/// A shell test that the child received `value` in `var` (exit 0) or not (exit 1).
fn check_var(var: &str, value: &str) -> String {
    format!("test \"${var}\" = '{value}'")
}

#[test]
fn secrets_and_the_api_key_stay_out_of_the_log_whatever_the_api_answers() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret.txt");
    std::fs::write(&secret_file, FILE_VALUE).unwrap();
    let env_file = dir.path().join("secrets.env");
    std::fs::write(&env_file, format!("ENV_FILE_SECRET={ENV_FILE_VALUE}\n")).unwrap();
    // The command saves what it received; the values themselves are not on its command line
    // (which is reported to the API server as `process_command`).
    let received = dir.path().join("received");
    let script = format!(
        "printf '%s\\n' \"$LITERAL_SECRET\" \"$JSON_SECRET\" \"$DISK_SECRET\" \"$ENV_FILE_SECRET\" \
         \"$PROC_WRAPPER_API_KEY\" > {}",
        received.display()
    );
    let secrets = [
        API_KEY,
        ROLLBAR_TOKEN,
        PLAIN_VALUE,
        JSON_VALUE,
        FILE_VALUE,
        ENV_FILE_VALUE,
    ];
    for case in ["accepted", "403", "500"] {
        let api = FakeApi::start();
        match case {
            "accepted" => api.set_api_key(API_KEY),
            "403" => api.set_api_key("another-key"),
            _ => {
                api.set_api_key(API_KEY);
                api.push_faults([Fault::Status(500)]);
            }
        }
        let out = run(wrapper()
            .env("PROC_WRAPPER_LOG_LEVEL", "DEBUG")
            .env("PROC_WRAPPER_TASK_UUID", TASK_UUID)
            .env("PROC_WRAPPER_API_BASE_URL", &api.url)
            .env("PROC_WRAPPER_API_KEY", API_KEY)
            .env("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "1")
            .env("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "1")
            .env("PROC_WRAPPER_ROLLBAR_ACCESS_TOKEN", ROLLBAR_TOKEN)
            .env("PROC_WRAPPER_ROLLBAR_BASE_URL", &api.url)
            .env("PROC_WRAPPER_ROLLBAR_RETRIES", "0")
            .env(
                "LITERAL_SECRET_FOR_PROC_WRAPPER_TO_RESOLVE",
                format!("PLAIN:{PLAIN_VALUE}"),
            )
            .env(
                "JSON_SECRET_FOR_PROC_WRAPPER_TO_RESOLVE",
                format!(r#"PLAIN:{{"password": "{JSON_VALUE}"}}|JP:$.password"#),
            )
            .env(
                "DISK_SECRET_FOR_PROC_WRAPPER_TO_RESOLVE",
                format!("FILE:{}", secret_file.display()),
            )
            .env(
                "PROC_WRAPPER_ENV_LOCATIONS",
                format!("FILE:{}", env_file.display()),
            )
            .args(["--", "sh", "-c", &script]));
        // The command ran with every secret, whatever the API answered.
        assert_eq!(out.status.code(), Some(0), "{case}: {}", printed(&out));
        assert_eq!(
            std::fs::read_to_string(&received).unwrap(),
            format!("{PLAIN_VALUE}\n{JSON_VALUE}\n{FILE_VALUE}\n{ENV_FILE_VALUE}\n{API_KEY}\n"),
            "{case}"
        );
        std::fs::remove_file(&received).unwrap();
        assert_hidden(&out, &secrets, case);
        let requests = api.requests();
        assert!(!requests.is_empty(), "{case}: the API was not called");
        let log = printed(&out);
        match case {
            "accepted" => {
                let bearer = format!("Bearer {API_KEY}");
                assert_eq!(requests[0].authorization.as_deref(), Some(bearer.as_str()));
                assert_eq!(requests.last().unwrap().status(), Some("SUCCEEDED"));
            }
            code => assert!(log.contains(code), "{case}: {log}"),
        }
        if case == "500" {
            let items = api.rollbar_items();
            assert_eq!(items.len(), 1, "{items:#?}");
            assert_eq!(items[0].0.as_deref(), Some(ROLLBAR_TOKEN));
        }
        // Nor are the secrets sent to the API server or to Rollbar.
        let sent: Vec<String> = requests
            .iter()
            .map(|r| r.body.to_string())
            .chain(api.rollbar_items().iter().map(|(_, body)| body.to_string()))
            .collect();
        for body in &sent {
            for secret in &secrets {
                assert!(
                    !body.contains(secret),
                    "{case}: '{secret}' was sent: {body}"
                );
            }
        }
    }
}

#[test]
fn only_log_secrets_shows_resolved_values() {
    let resolve = |log_secrets: bool| {
        let mut cmd = offline();
        cmd.env(
            "LITERAL_SECRET_FOR_PROC_WRAPPER_TO_RESOLVE",
            format!("PLAIN:{PLAIN_VALUE}"),
        );
        if log_secrets {
            cmd.arg("--log-secrets");
        }
        run(cmd.args(["--", "true"]))
    };
    let out = resolve(false);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert!(printed(&out).contains("resolved LITERAL_SECRET from PLAIN:<hidden>"));
    assert_hidden(&out, &[PLAIN_VALUE], "without --log-secrets");
    // The control: the same run logs the value when asked to, so the check above can fail.
    let out = resolve(true);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert!(printed(&out).contains(PLAIN_VALUE), "{}", printed(&out));
}

#[test]
fn help_and_bad_options_do_not_show_the_api_key_or_the_rollbar_token() {
    let cases: [(&[&str], i32); 7] = [
        (&["--api-key", API_KEY, "--help"], 0),
        (&["-k", API_KEY, "--no-such-option", "--", "true"], 78),
        (&["-k", API_KEY, "-k", API_KEY, "--", "true"], 78),
        (
            &["-k", API_KEY, "--process-timeout", "soon", "--", "true"],
            78,
        ),
        (&["-k", API_KEY, "--log-level", "LOUD", "--", "true"], 78),
        (
            &[
                "-k",
                API_KEY,
                "--offline-mode",
                "--prevent-offline-execution",
                "--",
                "true",
            ],
            78,
        ),
        // An API server that cannot be reached, at DEBUG level.
        (
            &[
                "-k",
                API_KEY,
                "-l",
                "DEBUG",
                "--task-uuid",
                TASK_UUID,
                "--api-base-url",
                "http://127.0.0.1:1",
                "--api-task-execution-creation-error-timeout",
                "0",
                "--",
                "true",
            ],
            0,
        ),
    ];
    for (args, code) in cases {
        // Rollbar cannot be reached either (and is not retried).
        let out = run(wrapper()
            .env("PROC_WRAPPER_API_KEY", API_KEY)
            .env("PROC_WRAPPER_ROLLBAR_ACCESS_TOKEN", ROLLBAR_TOKEN)
            .env("PROC_WRAPPER_ROLLBAR_BASE_URL", "http://127.0.0.1:1")
            .env("PROC_WRAPPER_ROLLBAR_RETRIES", "0")
            .args(args));
        let case = args.join(" ");
        assert_eq!(out.status.code(), Some(code), "{case}: {}", printed(&out));
        assert!(!printed(&out).is_empty(), "{case}: nothing was printed");
        assert_hidden(&out, &[API_KEY, ROLLBAR_TOKEN], &case);
    }
}

#[test]
fn failing_secret_locations_are_named_without_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let bad_yaml = dir.path().join("bad.yml");
    std::fs::write(&bad_yaml, format!("password: !!float {FAILING_VALUE}\n")).unwrap();
    let v = FAILING_VALUE;
    let variable = |location: String| (Some(location), Vec::new());
    let option = |name: &str, location: String| (None, vec![name.to_owned(), location]);
    let cases: Vec<(Option<String>, Vec<String>)> = vec![
        variable(format!("PLAIN:{v}|BOGUS")),
        variable(format!(r#"PLAIN:{{"a": "{v}"}}|JP:$.missing"#)),
        variable(format!("PLAIN:{v}!json")),
        variable(format!("PLAIN:a: !!int {v}!yaml")),
        variable(format!("FILE:{}", bad_yaml.display())),
        option("-e", format!("PLAIN:A={v}|BOGUS")),
        option("-e", format!("PLAIN:- {v}!yaml")),
        option("--config", format!(r#"PLAIN:{{"a": "{v}"}}|JP:$.b"#)),
    ];
    for (variable, args) in cases {
        let case = format!("{variable:?} {args:?}");
        let mut cmd = offline();
        if let Some(location) = &variable {
            cmd.env("X_FOR_PROC_WRAPPER_TO_RESOLVE", location);
        }
        let out = run(cmd.args(&args).args(["--", "sh", "-c", "echo RAN"]));
        assert_eq!(out.status.code(), Some(78), "{case}: {}", printed(&out));
        let log = printed(&out);
        assert!(!log.contains("RAN"), "{case}: the command ran");
        // The variable, or the option's location, is named.
        let named = if variable.is_some() {
            "X (from "
        } else {
            "location 'PLAIN:<hidden>"
        };
        assert!(log.contains(named), "{case}: {log}");
        assert_hidden(&out, &[FAILING_VALUE], &case);
    }
    // A dotenv line that does not parse is skipped with a warning, as python-dotenv does
    // (so 6.0.2 runs the command): the warning names the line, not its text.
    let out = run(offline()
        .env(
            "X_FOR_PROC_WRAPPER_TO_RESOLVE",
            format!("PLAIN:A=\"{v}!dotenv"),
        )
        .args(["--", "sh", "-c", "echo RAN"]));
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert!(printed(&out).contains("could not parse the statement starting at line 1"));
    assert_hidden(&out, &[FAILING_VALUE], "an unparsable dotenv line");
}

#[test]
fn aws_secret_values_stay_out_of_the_log() {
    let moto = Moto::connect();
    let json_arn = moto.secret_string(
        &Moto::unique("security-json"),
        &format!(r#"{{"password": "{JSON_VALUE}"}}"#),
    );
    let text_arn = moto.secret_string(&Moto::unique("security-text"), PLAIN_VALUE);
    let out = run(offline()
        .envs(moto.env())
        .env(
            "DB_PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE",
            format!("{json_arn}|JP:$.password"),
        )
        .env("TOKEN_FOR_PROC_WRAPPER_TO_RESOLVE", &text_arn)
        .args([
            "--",
            "sh",
            "-c",
            &format!(
                "{} && {}",
                check_var("DB_PASSWORD", JSON_VALUE),
                check_var("TOKEN", PLAIN_VALUE)
            ),
        ]));
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert_hidden(
        &out,
        &[JSON_VALUE, PLAIN_VALUE],
        "resolved from Secrets Manager",
    );
    for location in [format!("{text_arn}|JP:$.a"), format!("{text_arn}!json")] {
        let out = run(offline()
            .envs(moto.env())
            .env("TOKEN_FOR_PROC_WRAPPER_TO_RESOLVE", &location)
            .args(["--", "true"]));
        assert_eq!(out.status.code(), Some(78), "{}", printed(&out));
        assert!(printed(&out).contains("TOKEN (from"), "{}", printed(&out));
        assert_hidden(&out, &[PLAIN_VALUE], &location);
    }
}

#[test]
fn files_of_resolved_secrets_are_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let env_out = dir.path().join("resolved.env");
    let config_out = dir.path().join("resolved.json");
    let out = run(offline()
        .env(
            "LITERAL_SECRET_FOR_PROC_WRAPPER_TO_RESOLVE",
            format!("PLAIN:{PLAIN_VALUE}"),
        )
        .env(
            "PROC_WRAPPER_CONFIG_LOCATIONS",
            format!(r#"PLAIN:{{"password": "{JSON_VALUE}"}}"#),
        )
        .arg("--env-output-filename")
        .arg(&env_out)
        .arg("--config-output-filename")
        .arg(&config_out)
        .arg("--exit-after-writing-variables"));
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    for (file, secret) in [(&env_out, PLAIN_VALUE), (&config_out, JSON_VALUE)] {
        assert!(std::fs::read_to_string(file).unwrap().contains(secret));
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: mode {mode:o}", file.display());
    }
}

#[test]
fn the_status_listener_is_bound_to_loopback_only() {
    let port = free_udp_port();
    let api = FakeApi::start();
    // The listener is open before the command starts, so the command sees it.
    let out = run(reporting(BIN, &api.url)
        .env("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE")
        .env("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", port.to_string())
        .args([
            "--",
            "sh",
            "-c",
            "cat /proc/net/udp; cat /proc/net/udp6 2>/dev/null; true",
        ]));
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let addresses = udp_addresses_in(&stdout(&out), port);
    let loopback = format!("{:08X}", u32::from_ne_bytes(Ipv4Addr::LOCALHOST.octets()));
    assert_eq!(addresses, [loopback], "{}", printed(&out));
}

#[test]
fn resolved_values_are_passed_literally_never_run_by_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let m = marks.display();
    let value = format!(
        "$(touch {m}/dollar) `touch {m}/backtick`; touch {m}/semicolon && touch {m}/and \
         | touch {m}/pipe\n$HOME * \"double\" 'single' \\ ${{IFS}}"
    );
    let secret_file = dir.path().join("secret.txt");
    std::fs::write(&secret_file, &value).unwrap();
    let location = format!("FILE:{}", secret_file.display());
    let script = |out: &str| format!("printf %s \"$INJECTED\" > {}/{out}", dir.path().display());
    let runs: [(&str, Vec<String>); 3] = [
        // A command line string: auto shell mode runs it with /bin/sh -c.
        ("line", vec!["--command-line".into(), script("line")]),
        (
            "list",
            vec!["--".into(), "sh".into(), "-c".into(), script("list")],
        ),
        (
            "exec",
            vec![
                "--exec".into(),
                "--".into(),
                "sh".into(),
                "-c".into(),
                script("exec"),
            ],
        ),
    ];
    for (name, args) in runs {
        let out = run(offline()
            .env("INJECTED_FOR_PROC_WRAPPER_TO_RESOLVE", &location)
            .args(&args));
        assert_eq!(out.status.code(), Some(0), "{name}: {}", printed(&out));
        let received = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(received, value, "{name}");
        let ran: Vec<_> = std::fs::read_dir(&marks).unwrap().collect();
        assert!(ran.is_empty(), "{name}: the value was run: {ran:?}");
    }
}
