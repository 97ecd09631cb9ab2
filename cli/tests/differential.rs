//! The differential suite: each scenario runs through the Python proc_wrapper 6.0.2 (the
//! oracle, `PROC_WRAPPER_TEST_ORIGINAL_PYTHON`, installed by `tests/services.sh`) and through
//! `proc_wrapper`, and the two must agree, except where a scenario declares a deliberate
//! difference (a row of the README's "Differences from the Python original"), asserting our
//! behaviour. The harness is `procwrapper_tests::differential`;
//! the child commands use its helper scripts `rec` (records a run) and `waitrel` (waits to be
//! released).
//!
//! 6.0.2 takes `--` as part of the command and crashes on numbers given as options, so the
//! scenarios pass no `--` and give numbers through environment variables (except where that
//! difference is the point).
//!
//! `PROC_WRAPPER_DIFFERENTIAL_FILTER=text` runs only the scenarios whose name contains it;
//! `PROC_WRAPPER_DIFFERENTIAL_SHOW=1` adds both outcomes of each scenario to the summary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use nix::sys::signal::Signal;
use procwrapper_tests::differential::{
    Action, Outcome, Rule, Scenario, Suite, When, Wrappers, scenario, standard_rules,
};
use procwrapper_tests::fake_api::{API_KEY, Fault, TASK_NAME, TASK_UUID};
use procwrapper_tests::moto::Moto;

/// Scenarios run at the same time (each runs both wrappers at once).
const PARALLEL: usize = 6;

/// README "Differences": a result file that cannot be read (not written, or not in its
/// format) fails the run in both; ours also exits 1.
const RESULT_UNREADABLE: &str = "README D31: a result file that cannot be read fails the run (FAILED, exit_code 1), as in 6.0.2, and the wrapper exits 1 (6.0.2 exited 0)";

fn wrappers() -> Wrappers {
    Wrappers::from_env(env!("CARGO_BIN_EXE_proc_wrapper"))
}

fn rules() -> Vec<Rule> {
    let mut rules = standard_rules(env!("CARGO_PKG_VERSION"));
    rules.push(Rule::new(
        "README D5: PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS is not passed to the child as \
         the text None when unset",
        |ours, theirs| {
            let mut applied = false;
            for (o, t) in ours.env.iter().zip(theirs.env.iter_mut()) {
                let name = "PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS";
                if t.get(name).map(String::as_str) == Some("None") && !o.contains_key(name) {
                    t.remove(name);
                    applied = true;
                }
            }
            applied
        },
    ));
    rules.push(Rule::new(
        "README D26: ours passes the Task UUID and name that the creation response names to \
         the child (PROC_WRAPPER_TASK_UUID, PROC_WRAPPER_TASK_NAME); 6.0.2 passes them only \
         when they were configured",
        |ours, theirs| {
            let mut applied = false;
            for (o, t) in ours.env.iter_mut().zip(theirs.env.iter()) {
                for (name, learned) in [
                    ("PROC_WRAPPER_TASK_UUID", TASK_UUID),
                    ("PROC_WRAPPER_TASK_NAME", TASK_NAME),
                ] {
                    if o.get(name).map(String::as_str) == Some(learned) && !t.contains_key(name) {
                        o.remove(name);
                        applied = true;
                    }
                }
            }
            applied
        },
    ));
    rules.push(Rule::new(
        "README D27: 6.0.2 passes a format that it guessed from a file name to the child \
         (PROC_WRAPPER_ENV_OUTPUT_FORMAT, PROC_WRAPPER_CONFIG_OUTPUT_FORMAT, \
         PROC_WRAPPER_INPUT_VALUE_FORMAT, PROC_WRAPPER_RESULT_VALUE_FORMAT); ours passes them \
         only when they were configured",
        |ours, theirs| {
            let mut applied = false;
            for (o, t) in ours.env.iter().zip(theirs.env.iter_mut()) {
                for name in [
                    "PROC_WRAPPER_ENV_OUTPUT_FORMAT",
                    "PROC_WRAPPER_CONFIG_OUTPUT_FORMAT",
                    "PROC_WRAPPER_INPUT_VALUE_FORMAT",
                    "PROC_WRAPPER_RESULT_VALUE_FORMAT",
                ] {
                    let guessed = t
                        .get(name)
                        .is_some_and(|v| ["dotenv", "json", "yaml", "text"].contains(&v.as_str()));
                    if guessed && !o.contains_key(name) {
                        t.remove(name);
                        applied = true;
                    }
                }
            }
            applied
        },
    ));
    rules
}

/// Reporting to the fake API, for a Task known by name.
fn online(name: &str) -> Scenario {
    scenario(name).envs(&[
        ("PROC_WRAPPER_API_BASE_URL", "{API}"),
        ("PROC_WRAPPER_API_KEY", API_KEY),
        ("PROC_WRAPPER_TASK_NAME", "diff-task"),
    ])
}

/// Offline mode.
fn offline(name: &str) -> Scenario {
    scenario(name).env("PROC_WRAPPER_OFFLINE_MODE", "TRUE")
}

/// Short API timeouts and delays, for fault scenarios (with 6.0.2's variable names, which
/// ours reads too).
fn quick(s: Scenario) -> Scenario {
    s.envs(&[
        ("PROC_WRAPPER_API_TASK_CREATION_ERROR_TIMEOUT_SECONDS", "1"),
        ("PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS", "2"),
        ("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "2"),
        ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "1"),
        ("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "2"),
    ])
}

/// The environment the CloudReactor server gives a run that it starts (task_manager).
fn started_by_server(name: &str) -> Scenario {
    scenario(name).envs(&[
        ("PROC_WRAPPER_API_BASE_URL", "{API}"),
        ("PROC_WRAPPER_API_KEY", API_KEY),
        (
            "PROC_WRAPPER_TASK_EXECUTION_UUID",
            "d9554f00-eaeb-4a16-96e4-000000000077",
        ),
        ("PROC_WRAPPER_TASK_NAME", "server-task"),
        ("PROC_WRAPPER_INPUT_VALUE", "null"),
        ("PROC_WRAPPER_DEPLOYMENT", "production"),
        ("PROC_WRAPPER_LOG_LEVEL", "INFO"),
        ("PROC_WRAPPER_TASK_IS_SERVICE", "FALSE"),
        ("PROC_WRAPPER_PROCESS_MAX_RETRIES", "0"),
        ("PROC_WRAPPER_PROCESS_RETRY_DELAY_SECONDS", "0"),
        ("PROC_WRAPPER_TASK_MAX_CONCURRENCY", "1"),
        ("PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION", "FALSE"),
        ("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "300"),
        ("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "30"),
        ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "60"),
        ("PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS", "300"),
        (
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_TIMEOUT_SECONDS",
            "300",
        ),
        (
            "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_RETRY_DELAY_SECONDS",
            "120",
        ),
        ("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "1800"),
        ("PROC_WRAPPER_MANAGED_PROBABILITY", "None"),
        ("PROC_WRAPPER_FAILURE_REPORT_PROBABILITY", "None"),
        ("PROC_WRAPPER_TIMEOUT_REPORT_PROBABILITY", "None"),
    ])
}

/// 6.0.2 runs unreported when its Task settings are invalid, but passes the API settings to
/// the child as if it reported.
const API_ENV_INVALID: &str = "README D25: when the Task settings are invalid (no API key; an auto-created Task \
         without a run environment), 6.0.2 runs unreported but passes the API settings to the \
         child (PROC_WRAPPER_API_*, PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER); ours passes \
         none, as in offline mode";

fn api_env_when_invalid(ours: &Outcome, theirs: &Outcome) {
    let name = "PROC_WRAPPER_API_RETRY_DELAY_SECONDS";
    assert_eq!(ours.child_env(0, name), None);
    assert_eq!(theirs.child_env(0, name), Some("120"));
    assert!(ours.raw_requests.is_empty() && theirs.raw_requests.is_empty());
}

fn statuses(o: &Outcome) -> Vec<String> {
    o.raw_requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.status().unwrap_or("-")))
        .collect()
}

fn last_body(o: &Outcome) -> &serde_json::Value {
    o.raw_requests
        .last()
        .map_or(&serde_json::Value::Null, |r| &r.body)
}

fn basics() -> Vec<Scenario> {
    vec![
        offline("offline success").args(["rec", "a", "b"]),
        online("online success").args(["rec"]),
        online("child exit code").args(["-c", "rec; exit 3"]),
        online("no command"),
        offline("no command offline"),
        online("unknown command").args(["no-such-command-for-proc-wrapper"]),
        online("unknown command in a shell").args(["-c", "rec; no-such-command-for-proc-wrapper"]),
        online("timeout")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .args(["-c", "rec; waitrel"]),
        offline("timeout offline")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .args(["-c", "rec; waitrel"]),
        online("child killed by a signal")
            .args(["-c", "rec; kill -9 $$"])
            .differs(
                "README D9: a child killed by signal N makes the wrapper exit 128+N",
                &["exit"],
                |ours, theirs| {
                    assert_eq!(ours.exit(), "exit 137");
                    // Python's sys.exit(-9).
                    assert_eq!(theirs.exit(), "exit 247");
                    assert_eq!(last_body(ours)["exit_code"], -9);
                },
            ),
        scenario("version").args(["-v"]).differs(
            "README D13: -v prints CloudReactor Rust proc_wrapper v<version>",
            &["stdout"],
            |ours, theirs| {
                assert_eq!(
                    ours.stdout.trim(),
                    format!(
                        "CloudReactor Rust proc_wrapper v{}",
                        env!("CARGO_PKG_VERSION")
                    )
                );
                assert_eq!(
                    theirs.stdout.trim(),
                    "CloudReactor python proc_wrapper v6.0.2"
                );
            },
        ),
        online("log level")
            .env("PROC_WRAPPER_LOG_LEVEL", "WARNING")
            .args(["rec"]),
        online("log level option").args(["-l", "ERROR", "rec"]),
        offline("log timestamps")
            .env("TZ", "XYZ+05")
            .args(["rec"])
            .differs(
                "README D13: the log uses UTC timestamps",
                &["log_clock"],
                |ours, theirs| {
                    assert_eq!(ours.log_clock, Some(0), "ours logs in UTC");
                    assert_eq!(theirs.log_clock, Some(-5), "6.0.2 logs in local time");
                },
            ),
    ]
}

fn commands() -> Vec<Scenario> {
    let joined = "README D6: a list command that runs in a shell is joined into one script, each \
                  element quoted as needed (6.0.2 ran only its first word); a list that already \
                  is <shell> -c <script> runs as it is";
    vec![
        online("list command").args(["rec", "a", "b c"]),
        online("string command").args(["-c", "rec a   b"]),
        online("task command variable wins")
            .env("PROC_WRAPPER_TASK_COMMAND", "rec from-env")
            .args(["rec", "from-args"])
            .differs(
                "README D28: 6.0.2 sends the positional command as process_command even when PROC_WRAPPER_TASK_COMMAND replaced it; ours sends none",
                &["requests[0].body.process_command"],
                |ours, theirs| {
                    assert!(ours.body(0).get("process_command").is_none());
                    assert_eq!(theirs.body(0)["process_command"], "rec from-args");
                },
            ),
        offline("shell detected by quotes").args(["-c", "rec \"two words\" 'and more'"]),
        offline("shell detected by a variable")
            .env("X", "1")
            .args(["-c", "rec $X"]),
        offline("shell disabled splits on whitespace")
            .args(["--shell-mode", "disable", "-c", "rec \"hello dude\""]),
        offline("shell disabled by variable")
            .env("PROC_WRAPPER_SHELL_MODE", "disable")
            .args(["-c", "rec 'a b'"]),
        offline("shell enabled").args(["--shell-mode", "enable", "-c", "rec a"]),
        offline("shell enabled by variable")
            .env("PROC_WRAPPER_SHELL_MODE", "enable")
            .args(["-c", "rec a"]),
        offline("shell mode TRUE")
            .env("PROC_WRAPPER_SHELL_MODE", "TRUE")
            .args(["-c", "rec 'a b'"]),
        offline("shell mode FALSE")
            .env("PROC_WRAPPER_SHELL_MODE", "FALSE")
            .args(["-c", "rec 'a b'"])
            .differs(
                "README D7: PROC_WRAPPER_SHELL_MODE takes TRUE/FALSE as its README says (6.0.2 treated FALSE as enable)",
                &["argv"],
                |ours, theirs| {
                    assert_eq!(ours.argv, [["'a", "b'"]], "ours runs without a shell");
                    assert_eq!(theirs.argv, [["a b"]], "6.0.2 runs it in a shell");
                },
            ),
        offline("shell wrapping stripped").args(["-c", "/bin/sh -c 'rec \"x y\"'"]),
        offline("nested shell wrapping stripped")
            .args(["-c", "/bin/bash -c \"/bin/sh -c 'rec n'\""]),
        offline("shell wrapping of several words not stripped")
            .args(["-c", "/bin/sh -c rec a b"]),
        offline("shell wrapping kept by option")
            .args(["--no-strip-shell-wrapping", "-c", "/bin/sh -c 'rec x'"]),
        offline("shell wrapping kept by variable")
            .env("PROC_WRAPPER_STRIP_SHELL_WRAPPING", "FALSE")
            .args(["-c", "/bin/sh -c 'rec x'"]),
        offline("bare sh -c is not stripped").args(["-c", "sh -c 'rec y'"]),
        online("single argument holding a script")
            .args(["rec a; echo x | tr a-z A-Z; exit 3"]),
        offline("list command in a shell")
            .args(["sh", "-c", "rec; exit 4"])
            .differs(joined, &["exit", "runs", "argv", "env", "summary"], |ours, theirs| {
                assert_eq!((ours.exit().as_str(), ours.runs), ("exit 4", 1));
                // 6.0.2 ran `/bin/sh -c sh -c 'rec; exit 4'`: a shell reading the (empty) input.
                assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 0", 0));
            }),
        offline("list /bin/sh -c runs as it is")
            .args(["/bin/sh", "-c", "rec a | cat"])
            .differs(joined, &["runs", "argv", "env"], |ours, theirs| {
                assert_eq!(ours.argv, [["a"]]);
                assert_eq!(theirs.runs, 0);
            }),
        offline("list with shell characters is quoted")
            .args(["rec", "a;b", "c"])
            .differs(joined, &["argv"], |ours, theirs| {
                assert_eq!(ours.argv, [["a;b", "c"]]);
                assert_eq!(theirs.argv, [Vec::<String>::new()]);
            }),
        offline("work dir option")
            .file("work/sub/.keep", "")
            .args(["-w", "sub", "-c", "rec; touch made-here"]),
        offline("work dir variable")
            .file("work/sub/.keep", "")
            .env("PROC_WRAPPER_WORK_DIR", "{WORK}/sub")
            .args(["-c", "rec; touch made-here"]),
    ]
}

fn environment() -> Vec<Scenario> {
    vec![
        online("every setting in the child's environment")
            .envs(&[
                ("PROC_WRAPPER_DEPLOYMENT", "staging"),
                ("PROC_WRAPPER_TASK_VERSION_NUMBER", "7"),
                ("PROC_WRAPPER_TASK_VERSION_TEXT", "7.0 beta"),
                (
                    "PROC_WRAPPER_TASK_VERSION_SIGNATURE",
                    "43cfd2b905d5cb4f3e8e4bd7b8ea3ac7",
                ),
                ("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "100"),
                ("PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS", "5"),
                ("PROC_WRAPPER_TASK_MAX_CONCURRENCY", "2"),
                ("PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS", "50"),
                ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "3"),
                ("PROC_WRAPPER_API_RESUME_DELAY_SECONDS", "9"),
                ("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "20"),
                ("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1"),
                ("PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY", "0.5"),
                ("PROC_WRAPPER_API_TIMEOUT_REPORT_PROBABILITY", "1.0"),
                ("PROC_WRAPPER_TASK_UUID", TASK_UUID),
            ])
            .args(["rec"]),
        online("task instance metadata")
            .env(
                "PROC_WRAPPER_TASK_INSTANCE_METADATA",
                r#"{"a":1,"b":[1,2],"c":{"d":"e"}}"#,
            )
            .args(["rec"]),
        online("status listener")
            .envs(&[
                ("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE"),
                ("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", "{PORT}"),
            ])
            .args(["rec"]),
        online("status listener with interval")
            .envs(&[
                ("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE"),
                ("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", "{PORT}"),
                ("PROC_WRAPPER_STATUS_UPDATE_INTERVAL_SECONDS", "5"),
                ("PROC_WRAPPER_STATUS_UPDATE_MESSAGE_MAX_BYTES", "1000"),
            ])
            .args(["rec"]),
        online("rollbar settings")
            .envs(&[
                ("PROC_WRAPPER_ROLLBAR_ACCESS_TOKEN", "rollbar-token"),
                ("PROC_WRAPPER_ROLLBAR_TIMEOUT_SECONDS", "7"),
                ("PROC_WRAPPER_ROLLBAR_RETRIES", "1"),
                ("PROC_WRAPPER_ROLLBAR_RETRY_DELAY_SECONDS", "2"),
            ])
            .args(["rec"]),
        started_by_server("started by the server").env("PROC_WRAPPER_TASK_COMMAND", "rec server"),
        // The same environment with numbers in place of None: what else the server's
        // settings do, today.
        started_by_server("started by the server, probabilities given")
            .env("PROC_WRAPPER_MANAGED_PROBABILITY", "1")
            .env("PROC_WRAPPER_FAILURE_REPORT_PROBABILITY", "1")
            .env("PROC_WRAPPER_TIMEOUT_REPORT_PROBABILITY", "1")
            .env("PROC_WRAPPER_TASK_COMMAND", "rec server; exit 2"),
        started_by_server("started by the server, failing")
            .env("PROC_WRAPPER_TASK_COMMAND", "rec server; exit 2"),
        started_by_server("started by the server, timing out")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .env("PROC_WRAPPER_TASK_COMMAND", "rec server; waitrel"),
        online("input value null")
            .env("PROC_WRAPPER_INPUT_VALUE", "null")
            .args(["rec"]),
        offline("config in TASK_CONFIG")
            .file("work/c.json", r#"{"a": {"b": [1, 2]}, "s": "x"}"#)
            .args(["--config", "{WORK}/c.json", "rec"]),
        offline("config variable name")
            .env("PROC_WRAPPER_ENV_VAR_NAME_FOR_CONFIG", "MY_CONFIG")
            .file("work/c.json", r#"{"s": "x"}"#)
            .args(["--config", "{WORK}/c.json", "rec"]),
    ]
}

fn secrets() -> Vec<Scenario> {
    let strategy = |name: &str| {
        offline(&format!("merge strategy {name}"))
            .env("PROC_WRAPPER_CONFIG_MERGE_STRATEGY", name)
            .file(
                "work/c1.json",
                r#"{"a": {"x": 1, "l": [1, 2], "d": {"p": 1}}, "s": "one", "k": [{"m": 1}]}"#,
            )
            .file(
                "work/c2.json",
                r#"{"a": {"y": 2, "l": [3], "d": {"q": 2}}, "s": "two", "k": [{"n": 2}, 5]}"#,
            )
            .args([
                "--config",
                "{WORK}/c1.json",
                "--config",
                "{WORK}/c2.json",
                "rec",
            ])
    };
    let additive = |s: Scenario| {
        s.differs(
            "README D20: 6.0.2's ADDITIVE merges concatenate a list once per resolution (here four times: [1, 2, 3, 1, 2, 3, ...]); ours once",
            &["env[0].TASK_CONFIG"],
            |ours, theirs| {
                assert!(ours.child_env(0, "TASK_CONFIG").unwrap().contains(r#""l": [1, 2, 3],"#));
                assert!(theirs.child_env(0, "TASK_CONFIG").unwrap().contains(r#""l": [1, 2, 3, 1, 2, 3"#));
            },
        )
    };
    let nested_keys = "README D19: resolvable keys are removed at every level of the configuration once resolved (6.0.2 kept nested ones beside their resolved values)";
    let unresolved = "README D16: a secret that cannot be resolved stops the \
                      wrapper (exit 78) instead of starting the command with a partial \
                      environment; a location still unresolved after all passes is such a failure";
    let no_run = |ours: &Outcome, theirs: &Outcome| {
        assert_eq!((ours.exit().as_str(), ours.runs), ("exit 78", 0));
        assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 0", 1));
    };
    vec![
        offline("plain secret")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:hello world")
            .args(["rec"]),
        offline("env secret")
            .env("Y_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:OTHER")
            .env("OTHER", "other value")
            .args(["rec"]),
        offline("legacy name prefixes")
            .env("ENV_Z_FOR_PROC_WRAPPER_TO_RESOLVE", "OTHER")
            .env("PLAIN_P_FOR_PROC_WRAPPER_TO_RESOLVE", "literal")
            .env("OTHER", "other value")
            .args(["rec"]),
        offline("file secrets")
            .file("work/secret.txt", "s3cr3t\n")
            .env("F1_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/secret.txt")
            .env("F2_FOR_PROC_WRAPPER_TO_RESOLVE", "file://{WORK}/secret.txt")
            .env("F3_FOR_PROC_WRAPPER_TO_RESOLVE", "{WORK}/secret.txt")
            .args(["rec"]),
        offline("json file with JSONPath")
            .file(
                "work/s.json",
                r#"{"db": {"user": "pg", "port": 5432, "ok": true, "none": null}}"#,
            )
            .env("U_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/s.json|JP:$.db.user")
            .env("P_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/s.json|JP:$.db.port")
            .env("B_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/s.json|JP:$.db.ok")
            .env("N_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/s.json|JP:$.db.none")
            .args(["rec"]),
        offline("json file with JSONPath to an object")
            .file("work/s.json", r#"{"db": {"user": "pg", "ports": [1, 2]}}"#)
            .env("D_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/s.json|JP:$.db")
            .args(["rec"]),
        offline("yaml file with JSONPath")
            .file("work/s.yaml", "db:\n  user: pg\n  port: 5432\n")
            .env("U_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/s.yaml|JP:$.db.user")
            .env("P_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/s.yaml|JP:$.db.port")
            .args(["rec"]),
        offline("format suffix")
            .file("work/noext", r#"{"a": "from json"}"#)
            .env("A_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/noext!json|JP:$.a")
            .args(["rec"]),
        offline("plain json with JSONPath")
            .env("V_FOR_PROC_WRAPPER_TO_RESOLVE", r#"PLAIN:{"a": {"b": "c"}}|JP:$.a.b"#)
            .args(["rec"]),
        offline("JSONPath expressions")
            .file(
                "work/j.json",
                r#"{"items": [{"n": "a", "v": 1}, {"n": "b", "v": 2}, {"n": "c", "v": 3}], "m": {"x": {"name": "deep"}, "y": {"name": "deeper"}}}"#,
            )
            .envs(&[
                ("J1_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/j.json|JP:$.items[1].n"),
                ("J2_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/j.json|JP:$.items[*].n"),
                ("J3_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/j.json|JP:$..name"),
                ("J4_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/j.json|JP:$.items[0:2].v"),
                ("J5_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/j.json|JP:$.m.*.name"),
                ("J6_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/j.json|JP:$.items[-1].v"),
                ("J7_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/j.json|JP:$['m']['x']"),
            ])
            .args(["rec"]),
        offline("yaml format suffix")
            .file("work/noext", "a:\n  b: from yaml\n")
            .env("A_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/noext!yaml|JP:$.a.b")
            .args(["rec"]),
        offline("JSONPath splat")
            .env("S_FOR_PROC_WRAPPER_TO_RESOLVE", r#"PLAIN:{"d": [1]}|JP:$.d[*]"#)
            .args(["rec"]),
        offline("JSONPath without a match")
            .env("S_FOR_PROC_WRAPPER_TO_RESOLVE", r#"PLAIN:{"a": 1}|JP:$.b"#)
            .args(["{ROOT}/bin/rec"])
            .differs(unresolved, &["exit", "runs", "argv", "env", "summary"], no_run),
        offline("config secret")
            .file("work/c.json", r#"{"a": {"b": "deep"}}"#)
            .env("C_FOR_PROC_WRAPPER_TO_RESOLVE", "CONFIG:$.a.b")
            .args(["--config", "{WORK}/c.json", "rec"]),
        offline("config locations variable")
            .file("work/c1.json", r#"{"a": 1}"#)
            .file("work/c2.json", r#"{"b": 2}"#)
            .env("PROC_WRAPPER_CONFIG_LOCATIONS", "{WORK}/c1.json,{WORK}/c2.json")
            .args(["rec"]),
        offline("config top-level resolvable key")
            .file("work/c.json", r#"{"t__to_resolve": "PLAIN:x", "u": 1}"#)
            .args(["--config", "{WORK}/c.json", "rec"]),
        offline("config nested resolvable key")
            .file("work/c.json", r#"{"db": {"user__to_resolve": "PLAIN:pg"}}"#)
            .args(["--config", "{WORK}/c.json", "rec"])
            .differs(
                nested_keys,
                &["env[0].TASK_CONFIG"],
                |ours, theirs| {
                    assert_eq!(ours.child_env(0, "TASK_CONFIG"), Some(r#"{"db": {"user": "pg"}}"#));
                    assert_eq!(
                        theirs.child_env(0, "TASK_CONFIG"),
                        Some(r#"{"db": {"user__to_resolve": "PLAIN:pg", "user": "pg"}}"#)
                    );
                },
            ),
        offline("dotenv file")
            .file(
                "work/a.env",
                "A=1\nexport B=\"two words\"\n# a comment\nC='single $A'\nD=${A}-x\nE=\"line\\nbreak\"\nF= spaced \n",
            )
            .args(["-e", "{WORK}/a.env", "rec"]),
        offline("dotenv line without equals sign")
            .file("work/a.env", "A=1\nNOEQ\n")
            .args(["-e", "{WORK}/a.env", "rec"]),
        offline("env locations variable")
            .file("work/a.env", "A=from-a\nB=from-a\n")
            .file("work/b.json", r#"{"B": "from-b", "N": 5, "T": true, "F": 1.5, "Z": null}"#)
            .env("PROC_WRAPPER_ENV_LOCATIONS", "{WORK}/a.env;{WORK}/b.json")
            .args(["rec"]),
        offline("env locations with escapes and empty items")
            .file("work/a,b.env", "A=comma\n")
            .file("work/c.env", "C=plain\n")
            .env("PROC_WRAPPER_ENV_LOCATIONS", " {WORK}/a\\,b.env , ;{WORK}/c.env; ")
            .args(["rec"]),
        offline("env locations variable and option")
            .file("work/a.env", "A=from-a\nB=from-a\n")
            .file("work/b.env", "B=from-b\n")
            .env("PROC_WRAPPER_ENV_LOCATIONS", "{WORK}/a.env")
            .args(["-e", "{WORK}/b.env", "rec"])
            .differs(
                "README D21: with PROC_WRAPPER_ENV_LOCATIONS set, 6.0.2 drops the -e locations when it resolves again before running (its merged environment re-sets the list); ours reads both, -e last",
                &["env[0].B"],
                |ours, theirs| {
                    assert_eq!(ours.child_env(0, "B"), Some("from-b"));
                    assert_eq!(theirs.child_env(0, "B"), Some("from-a"));
                },
            ),
        offline("process environment wins over env files")
            .file("work/a.env", "A=from-file\n")
            .env("A", "from-process")
            .args(["-e", "{WORK}/a.env", "rec"]),
        offline("nested json env file")
            .file("work/e.json", r#"{"OBJ": {"x": [1, 2]}, "LST": ["a", "b"]}"#)
            .args(["-e", "{WORK}/e.json", "rec"]),
        offline("yaml env file")
            .file("work/e.yaml", "S: text\nN: 5\nB: true\nF: 1.5\n")
            .args(["-e", "{WORK}/e.yaml", "rec"]),
        offline("yaml 1.1 values")
            .file(
                "work/e.yaml",
                "Y1: yes\nY2: on\nY3: off\nO: 0777\nU: 1_000\nT: 12:30\nE: 1e3\nN: ~\n",
            )
            .args(["-e", "{WORK}/e.yaml", "rec"]),
        offline("yaml config")
            .file("work/c.yaml", "a:\n  b: [1, 2]\n")
            .env("B_FOR_PROC_WRAPPER_TO_RESOLVE", "CONFIG:$.a.b[1]")
            .args(["--config", "{WORK}/c.yaml", "rec"]),
        scenario("env file sets the API settings")
            .file(
                "work/api.env",
                "PROC_WRAPPER_API_KEY=SOMEAPIKEY\nPROC_WRAPPER_TASK_VERSION_TEXT=from-file\n",
            )
            .env("PROC_WRAPPER_API_BASE_URL", "{API}")
            .env("PROC_WRAPPER_TASK_NAME", "diff-task")
            .args(["-e", "{WORK}/api.env", "rec"]),
        scenario("missing API key")
            .env("PROC_WRAPPER_API_BASE_URL", "{API}")
            .env("PROC_WRAPPER_TASK_NAME", "diff-task")
            .args(["rec"])
            .differs(API_ENV_INVALID, &["env[0]"], api_env_when_invalid),
        scenario("secret sets the API key")
            .envs(&[
                ("PROC_WRAPPER_API_BASE_URL", "{API}"),
                ("PROC_WRAPPER_TASK_NAME", "diff-task"),
                ("PROC_WRAPPER_API_KEY_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:SOMEAPIKEY"),
            ])
            .args(["rec"]),
        offline("missing env file")
            .args(["-e", "{WORK}/nope.env", "rec"])
            .differs(
                "README D17: an env location that cannot be read exits 78 in ours; 6.0.2 crashes with a traceback, exit 1 (neither runs the command)",
                &["exit", "log_clock"],
                |ours, theirs| {
                    assert_eq!((ours.exit().as_str(), ours.runs), ("exit 78", 0));
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 1", 0));
                    assert!(theirs.stderr.contains("FileNotFoundError"));
                },
            ),
        offline("secret that fails")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/missing.txt")
            .env("Y_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:y")
            .args(["{ROOT}/bin/rec"])
            .differs(unresolved, &["exit", "runs", "argv", "env", "summary"], no_run),
        offline("env secret of an unset variable")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:NOPE")
            .args(["{ROOT}/bin/rec"])
            .differs(unresolved, &["exit", "runs", "argv", "env", "summary"], no_run),
        offline("secret replaces a variable")
            .env("FOO", "orig")
            .env("FOO_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:new")
            .args(["rec"]),
        offline("secret replaces a variable with overwrite")
            .env("FOO", "orig")
            .env("FOO_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:new")
            .args(["--overwrite-env-during-resolution", "rec"]),
        offline("secrets not resolved")
            .env("PROC_WRAPPER_RESOLVE_SECRETS", "FALSE")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:x")
            .args(["rec"]),
        offline("custom prefix and suffix")
            .env("PROC_WRAPPER_RESOLVABLE_ENV_VAR_NAME_PREFIX", "SECRET_")
            .env("PROC_WRAPPER_RESOLVABLE_ENV_VAR_NAME_SUFFIX", "_LOC")
            .env("SECRET_X_LOC", "PLAIN:x")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:unchanged")
            .args(["rec"]),
        offline("no resolution iterations")
            .env("PROC_WRAPPER_MAX_CONFIG_RESOLUTION_ITERATIONS", "0")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:x")
            .args(["rec"])
            .differs(
                "README D18: PROC_WRAPPER_MAX_CONFIG_RESOLUTION_ITERATIONS=0 disables resolution (6.0.2 crashed)",
                &["exit", "runs", "argv", "env", "summary"],
                |ours, theirs| {
                    assert_eq!(ours.exit(), "exit 0");
                    assert_eq!(ours.child_env(0, "X_FOR_PROC_WRAPPER_TO_RESOLVE"), Some("PLAIN:x"));
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 1", 0));
                },
            ),
        offline("resolution depth")
            .env("PROC_WRAPPER_MAX_CONFIG_RESOLUTION_DEPTH", "1")
            .file(
                "work/c.json",
                r#"{"a__to_resolve": "PLAIN:1", "n": {"b__to_resolve": "PLAIN:2"}}"#,
            )
            .args(["--config", "{WORK}/c.json", "rec"]),
        offline("secret referring to another")
            .env("A_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:B")
            .env("B_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:b value")
            .args(["rec"]),
        strategy("DEEP"),
        strategy("SHALLOW"),
        strategy("REPLACE"),
        additive(strategy("ADDITIVE")),
        strategy("TYPESAFE_REPLACE"),
        additive(strategy("TYPESAFE_ADDITIVE")),
        offline("env output file")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:it's")
            .args([
                "--env-output-filename",
                "{WORK}/out.env",
                "--exit-after-writing-variables",
                "rec",
            ]),
        offline("env output file as json")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:x")
            .env("PROC_WRAPPER_ENV_OUTPUT_FORMAT", "json")
            .args([
                "--env-output-filename",
                "{WORK}/out",
                "--exit-after-writing-variables",
                "rec",
            ]),
        offline("env output file as yaml")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:x")
            .args([
                "--env-output-filename",
                "{WORK}/out.yml",
                "--exit-after-writing-variables",
                "rec",
            ]),
        offline("config output file")
            .file("work/c.json", r#"{"a": {"b__to_resolve": "PLAIN:x"}, "c__to_resolve": "PLAIN:y"}"#)
            .args([
                "--config",
                "{WORK}/c.json",
                "--config-output-filename",
                "{WORK}/conf.json",
                "--exit-after-writing-variables",
                "rec",
            ])
            .differs(nested_keys, &["files.conf.json"], |ours, theirs| {
                assert_eq!(ours.files["conf.json"], r#"{"a": {"b": "x"}, "c": "y"}"#);
                assert_eq!(
                    theirs.files["conf.json"],
                    r#"{"a": {"b__to_resolve": "PLAIN:x", "b": "x"}, "c": "y"}"#
                );
            }),
        offline("env output file removed after the run")
            .env("PROC_WRAPPER_ENV_OUTPUT_FILENAME", "out.env")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:x")
            .args(["-c", "rec; cp out.env copy.env"]),
        online("exit after writing variables, reporting")
            .args([
                "--env-output-filename",
                "{WORK}/out.json",
                "--exit-after-writing-variables",
                "rec",
            ]),
        offline("SELF transform")
            .file("work/s.json", r#"{"a": "b"}"#)
            .env("S_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:{WORK}/s.json|SELF")
            .args(["rec"]),
        offline("env secret from an env file")
            .file("work/a.env", "FROM_FILE='file value'\n")
            .env("X_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:FROM_FILE")
            .args(["-e", "{WORK}/a.env", "rec"]),
        offline("dotenv value with inner spaces")
            .file("work/a.env", "A=two words\n")
            .args(["-e", "{WORK}/a.env", "rec"]),
        offline("dotenv interpolation from the process environment")
            .file("work/a.env", "A=${OUTSIDE}/x\n")
            .env("OUTSIDE", "out")
            .args(["-e", "{WORK}/a.env", "rec"]),
        offline("dotenv interpolation with a default")
            .file("work/a.env", "B=${MISSING:-fallback}\n")
            .args(["-e", "{WORK}/a.env", "rec"]),
        offline("env output file quoting")
            .env("Q1", "it's \"quoted\" $HOME")
            .env("Q2", "two\nlines")
            .env("Q3", "back\\slash")
            .args([
                "--env-output-filename",
                "{WORK}/out.env",
                "--exit-after-writing-variables",
                "rec",
            ]),
        offline("config output file as yaml")
            .file("work/c.json", r#"{"b": [1, {"c": "d"}], "a": "x"}"#)
            .args([
                "--config",
                "{WORK}/c.json",
                "--config-output-filename",
                "{WORK}/conf.yaml",
                "--exit-after-writing-variables",
                "rec",
            ]),
        offline("log capture is off offline")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "3")
            .args(["-c", "rec; echo out; echo err >&2; exit 1"]),
        offline("env output file that cannot be written")
            .args([
                "--env-output-filename",
                "{WORK}/no-such-folder/out.env",
                "rec",
            ])
            .differs(
                "README D24: an env or config output file that cannot be written is an error naming the file: exit 78, and the command does not run",
                &["exit", "log_clock"],
                |ours, theirs| {
                    assert_eq!((ours.exit().as_str(), ours.runs), ("exit 78", 0));
                    assert!(ours.stderr.contains("no-such-folder/out.env"));
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 1", 0));
                },
            ),
        offline("env output format unknown")
            .env("PROC_WRAPPER_ENV_OUTPUT_FORMAT", "xml")
            .args(["-c", "rec; ls > listing"]),
    ]
}

fn lifecycle() -> Vec<Scenario> {
    let spelling = "README D3: both spellings are read where 6.0.2's code and README disagree";
    vec![
        online("auto-created task")
            .envs(&[
                ("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE"),
                ("PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME", "staging"),
            ])
            .args(["rec"]),
        online("auto-created task with props")
            .env(
                "PROC_WRAPPER_AUTO_CREATE_TASK_PROPS",
                r#"{"description":"made by the test","passive":true,"run_environment":{"name":"prod"}}"#,
            )
            .args(["rec"]),
        online("auto-created task by run environment uuid")
            .envs(&[
                ("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE"),
                ("PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_UUID", "re-uuid"),
                ("PROC_WRAPPER_TASK_IS_PASSIVE", "TRUE"),
            ])
            .args(["rec"]),
        online("auto-created task in the deployment's run environment")
            .envs(&[
                ("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE"),
                ("PROC_WRAPPER_DEPLOYMENT", "staging"),
                ("PROC_WRAPPER_TASK_IS_PASSIVE", "TRUE"),
            ])
            .args(["rec"]),
        online("auto-created task without a run environment")
            .env("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE")
            .args(["rec"])
            .differs(API_ENV_INVALID, &["env[0]"], api_env_when_invalid),
        online("auto-created task forced active")
            .envs(&[
                ("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE"),
                ("PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME", "staging"),
            ])
            .args(["--force-task-active", "rec"]),
        online("passive task").env("PROC_WRAPPER_TASK_IS_PASSIVE", "TRUE").args(["rec"]),
        online("task forced active")
            .args(["--force-task-active", "rec"]),
        scenario("task by uuid")
            .envs(&[
                ("PROC_WRAPPER_API_BASE_URL", "{API}"),
                ("PROC_WRAPPER_API_KEY", API_KEY),
                ("PROC_WRAPPER_TASK_UUID", TASK_UUID),
            ])
            .args(["rec"]),
        online("known execution uuid")
            .env(
                "PROC_WRAPPER_TASK_EXECUTION_UUID",
                "d9554f00-eaeb-4a16-96e4-000000000099",
            )
            .args(["-c", "rec; exit 5"]),
        online("execution method settings")
            .envs(&[
                ("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE"),
                ("PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME", "staging"),
                ("PROC_WRAPPER_TASK_IS_PASSIVE", "TRUE"),
                ("PROC_WRAPPER_EXECUTION_METHOD_TYPE", "Unknown"),
                ("PROC_WRAPPER_EXECUTION_METHOD_PROPS", r#"{"x": 1}"#),
            ])
            .args(["rec"]),
        online("service")
            .envs(&[
                ("PROC_WRAPPER_TASK_IS_SERVICE", "TRUE"),
                ("PROC_WRAPPER_SCHEDULE", "cron(0 * * * ? *)"),
                ("PROC_WRAPPER_TASK_MAX_CONCURRENCY", "3"),
                ("PROC_WRAPPER_MAX_CONFLICTING_AGE_SECONDS", "120"),
                ("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "5"),
            ])
            .args(["rec"]),
        online("version and build fields")
            .envs(&[
                ("PROC_WRAPPER_TASK_VERSION_NUMBER", "12"),
                ("PROC_WRAPPER_TASK_VERSION_TEXT", "1.2"),
                ("PROC_WRAPPER_TASK_VERSION_SIGNATURE", "abc123"),
                ("PROC_WRAPPER_BUILD_TASK_EXECUTION_UUID", "build-uuid"),
                ("PROC_WRAPPER_DEPLOYMENT_TASK_EXECUTION_UUID", "deploy-uuid"),
            ])
            .args(["rec"]),
        // The child runs until a heartbeat follows the update with the PID: ours sends that
        // update asynchronously, and puts the PID in the final update too while it is not yet
        // answered (reported).
        online("send pid")
            .env("PROC_WRAPPER_SEND_PID", "TRUE")
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1")
            .args(["-c", "rec; waitrel"])
            .step(When::Requests(3), Action::Release),
        online("send hostname").env("PROC_WRAPPER_SEND_HOSTNAME", "TRUE").args(["rec"]),
        online("no runtime metadata")
            .env("PROC_WRAPPER_SEND_RUNTIME_METADATA", "FALSE")
            .args(["rec"]),
        online("heartbeats")
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1")
            .args(["-c", "rec; waitrel"])
            .step(When::Requests(2), Action::Release),
        online("no heartbeats")
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "-1")
            .args(["rec"]),
        online("retries")
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "2")
            .args(["-c", "rec; exit 3"]),
        online("retries then success")
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "3")
            .args(["-c", "rec; [ $(wc -l < \"$REC/runs\") -ge 2 ] || exit 3"]),
        online("retry delay")
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "1")
            .env("PROC_WRAPPER_PROCESS_RETRY_DELAY_SECONDS", "1")
            .args(["-c", "rec; exit 3"]),
        online("timeouts with retries")
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "1")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .args(["-c", "rec; waitrel"]),
        online("timeout then success")
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "1")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .args(["-c", "rec; [ $(wc -l < \"$REC/runs\") -ge 2 ] || waitrel"]),
        online("termination grace period")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .env("PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS", "1")
            .args(["-c", "trap '' TERM; rec; waitrel"]),
        online("process group not terminated")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .env("PROC_WRAPPER_TERMINATE_PROCESS_GROUP", "FALSE")
            .args(["-c", "rec; waitrel; true"]),
        online("process group termination, README spelling")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .env("PROC_WRAPPER_PROCESS_GROUP_TERMINATION", "FALSE")
            .args(["-c", "rec; waitrel; true"])
            .differs(spelling, &["alive"], |ours, theirs| {
                assert_eq!(ours.alive, 1, "ours stops only the child");
                assert_eq!(theirs.alive, 0, "6.0.2 ignores the README spelling");
            }),
        online("process max retries, README spelling")
            .env("PROC_WRAPPER_PROCESS_MAX_RETRIES", "1")
            .args(["-c", "rec; exit 3"])
            .differs(spelling, &["requests[0].body.process_max_retries", "requests[1]", "requests[2]", "runs", "argv[1]", "env[1]", "summary"], |ours, theirs| {
                assert_eq!((ours.runs, theirs.runs), (2, 1));
                assert_eq!(ours.body(0)["process_max_retries"], 1);
            }),
        online("creation error timeout, README spelling")
            .env(
                "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_ERROR_TIMEOUT_SECONDS",
                "5",
            )
            .args(["rec"])
            .differs(spelling, &["requests[0].body.api_task_execution_creation_error_timeout_seconds"], |ours, theirs| {
                let key = "api_task_execution_creation_error_timeout_seconds";
                assert_eq!(ours.body(0)[key], 5);
                assert_eq!(theirs.body(0)[key], 1800);
            }),
        online("both spellings, the README's wins")
            .env("PROC_WRAPPER_PROCESS_MAX_RETRIES", "1")
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "2")
            .args(["-c", "rec; exit 3"])
            .differs(spelling, &["requests[0].body.process_max_retries", "requests[2]", "requests[3]", "runs", "argv[2]", "env[2]", "summary"], |ours, theirs| {
                assert_eq!((ours.runs, theirs.runs), (2, 3));
            }),
        online("probabilities without API_")
            .env("PROC_WRAPPER_MANAGED_PROBABILITY", "0")
            .env("PROC_WRAPPER_FAILURE_REPORT_PROBABILITY", "0")
            .args(["rec"])
            .differs(
                spelling,
                &[
                    "requests[0]",
                    "requests[1]",
                    "env[0].PROC_WRAPPER_API_MANAGED_PROBABILITY",
                    "env[0].PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY",
                    "env[0].PROC_WRAPPER_TASK_EXECUTION_UUID",
                ],
                |ours, theirs| {
                assert!(ours.raw_requests.is_empty(), "ours samples the run out");
                assert_eq!(statuses(theirs), ["POST RUNNING", "PATCH SUCCEEDED"]);
            }),
        online("max retries -1")
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "-1")
            .args(["-c", "rec; [ $(wc -l < \"$REC/runs\") -ge 3 ] || exit 3"])
            .differs(
                "README D2: -1 for --process-max-retries means retry forever (6.0.2 turned it into 0)",
                &["exit", "requests[0].body.process_max_retries", "requests[1]", "requests[2]", "requests[3]", "runs", "argv", "env", "summary"],
                |ours, theirs| {
                    assert_eq!((ours.exit().as_str(), ours.runs), ("exit 0", 3));
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 3", 1));
                    assert_eq!(ours.body(0)["process_max_retries"], -1);
                },
            ),
        online("resume delay -1")
            .env("PROC_WRAPPER_API_RESUME_DELAY_SECONDS", "-1")
            .args(["rec"])
            .differs(
                "README D2: -1 for --api-resume-delay means never resume (6.0.2 turned it into 0)",
                &["requests[0].body.api_resume_delay_seconds", "env[0].PROC_WRAPPER_API_RESUME_DELAY_SECONDS"],
                |ours, theirs| {
                    assert_eq!(ours.body(0)["api_resume_delay_seconds"], -1);
                    assert_eq!(theirs.body(0)["api_resume_delay_seconds"], 0);
                    assert_eq!(ours.child_env(0, "PROC_WRAPPER_API_RESUME_DELAY_SECONDS"), Some("-1"));
                },
            ),
        online("numbers on the command line")
            .args(["-t", "1", "-r", "1", "-c", "rec; waitrel"])
            .differs(
                "README D1: numbers on the command line are parsed (6.0.2 crashes on -t 2)",
                &["requests", "runs", "argv", "env", "summary", "log_clock"],
                |ours, theirs| {
                    assert_eq!((ours.exit().as_str(), ours.runs), ("exit 1", 2));
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 1", 0));
                    assert!(theirs.stderr.contains("TypeError"), "6.0.2 crashes");
                },
            ),
        online("a number that does not parse")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "soon")
            .args(["rec"])
            .differs(
                "README D1: a value that does not parse is an error naming the option or variable, exit 78",
                &["exit", "log_clock"],
                |ours, theirs| {
                    assert_eq!(ours.exit(), "exit 78");
                    assert!(ours.stderr.contains("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS"));
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 1", 0));
                    assert!(theirs.stderr.contains("ValueError"), "6.0.2 crashes");
                },
            ),
        online("probability out of range")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "2")
            .args(["rec"])
            .differs(
                "README D1: numbers that do not parse, JSON options and probabilities outside 0 to 1 are errors, exit 78",
                &["exit", "runs", "argv", "env", "summary", "log_clock"],
                |ours, theirs| {
                    assert_eq!((ours.exit().as_str(), ours.runs), ("exit 78", 0));
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 0", 1));
                    assert!(theirs.raw_requests.is_empty(), "6.0.2 runs offline");
                },
            ),
        scenario("prevent offline execution without an API key")
            .envs(&[
                ("PROC_WRAPPER_API_BASE_URL", "{API}"),
                ("PROC_WRAPPER_TASK_NAME", "diff-task"),
            ])
            .args(["-p", "rec"])
            .differs(
                "README D11: --prevent-offline-execution with a missing API key or Task exits 78 without running",
                &["exit", "runs", "argv", "env", "summary"],
                |ours, theirs| {
                    assert_eq!((ours.exit().as_str(), ours.runs), ("exit 78", 0));
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 0", 1));
                },
            ),
        online("offline mode and prevent offline execution").args(["-o", "-p", "rec"]),
        offline("task name in offline mode")
            .env("PROC_WRAPPER_TASK_NAME", "offline-task")
            .args(["rec"])
            .differs(
                "README D12: the Task name and UUID are read from the environment in offline mode too",
                &["summary"],
                |ours, theirs| {
                    assert_eq!(ours.summary, ["Task 'offline-task' on attempt 1 / 1"]);
                    assert_eq!(theirs.summary, ["Task '[Unnamed]' on attempt 1 / 1"]);
                },
            ),
    ]
}

fn options() -> Vec<Scenario> {
    vec![
        scenario("options for the API and the Task")
            .args([
                "--api-base-url",
                "{API}/",
                "-k",
                API_KEY,
                "-n",
                "cli-task",
                "--task-version-text",
                "v1",
                "--task-version-signature",
                "sig",
                "--build-task-execution-uuid",
                "b-uuid",
                "--deployment",
                "dev",
                "--send-pid",
                "--send-hostname",
                "--no-send-runtime-metadata",
                "-c",
                "rec; waitrel",
            ])
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1")
            .step(When::Requests(3), Action::Release),
        scenario("options for an auto-created Task")
            .args([
                "--api-base-url",
                "{API}",
                "--api-key",
                API_KEY,
                "--task-name",
                "cli-task",
                "-a",
                "--auto-create-task-run-environment-name",
                "dev",
                "-s",
                "--schedule",
                "rate(1 hour)",
                "rec",
            ]),
        online("variables win over options")
            .args(["-n", "cli-task", "-k", "wrong", "--api-base-url", "http://127.0.0.1:1", "rec"]),
        online("JSON options")
            .args([
                "--task-instance-metadata",
                r#"{"from": "option"}"#,
                "--execution_method_type",
                "Unknown",
                "rec",
            ]),
        online("log capture options")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "2")
            .args([
                "--separate-stdout-and-stderr-logs",
                "--ignore-stdout",
                "-c",
                "rec; echo o; echo e >&2; exit 1",
            ]),
        online("result options")
            .args([
                "--result-filename",
                "{WORK}/r.txt",
                "--result-value-format",
                "json",
                "--no-cleanup-result-file",
                "-c",
                "rec; echo '[1, 2]' > r.txt",
            ]),
        online("exclude timestamps in the log")
            .args(["--exclude-timestamps-in-log", "rec"])
            .differs(
                "README D14: --exclude-timestamps-in-log drops the timestamps of every log line in ours; 6.0.2 only of the lines after the Task Execution UUID is known",
                &["log_clock"],
                |ours, theirs| {
                    assert_eq!(ours.log_clock, None);
                    assert_eq!(theirs.log_clock, Some(0));
                },
            ),
    ]
}

fn runtime_metadata() -> Vec<Scenario> {
    vec![
        online("ECS metadata")
            .env("ECS_CONTAINER_METADATA_URI_V4", "{ECS}")
            .args(["rec"]),
        online("ECS metadata, auto-created Task")
            .env("ECS_CONTAINER_METADATA_URI_V4", "{ECS}")
            .env("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE")
            .env(
                "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
                "staging",
            )
            .args(["rec"]),
        online("ECS metadata, auto-created active Task")
            .env("ECS_CONTAINER_METADATA_URI_V4", "{ECS}")
            .env("PROC_WRAPPER_AUTO_CREATE_TASK", "TRUE")
            .env(
                "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
                "staging",
            )
            .args(["--force-task-active", "-c", "rec; exit 2"]),
    ]
}

/// How values of variables are read (README "Options and environment variables").
fn parsing() -> Vec<Scenario> {
    vec![
        online("negative values")
            .envs(&[
                ("PROC_WRAPPER_TASK_MAX_CONCURRENCY", "-1"),
                ("PROC_WRAPPER_API_ERROR_TIMEOUT_SECONDS", "-1"),
                ("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "-1"),
                ("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "-1"),
                ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", "-1"),
                ("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "-1"),
                ("PROC_WRAPPER_PROCESS_RETRY_DELAY_SECONDS", "-1"),
                (
                    "PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS",
                    "-1",
                ),
                ("PROC_WRAPPER_MAX_CONFLICTING_AGE_SECONDS", "-1"),
                ("PROC_WRAPPER_TASK_VERSION_NUMBER", "-1"),
                ("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "-1"),
            ])
            .args(["rec"])
            .differs(
                "README D4: -1 values (no limit) are sent to the API and to the child as -1 (for the termination grace period 6.0.2 sends null and passes the text None)",
                &[
                    "requests[0].body.process_termination_grace_period_seconds",
                    "env[0].PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS",
                ],
                |ours, theirs| {
                    let key = "process_termination_grace_period_seconds";
                    assert_eq!(ours.body(0)[key], -1);
                    assert_eq!(theirs.body(0)[key], serde_json::Value::Null);
                    let name = "PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS";
                    assert_eq!(ours.child_env(0, name), Some("-1"));
                    assert_eq!(theirs.child_env(0, name), Some("None"));
                },
            ),
        online("zero process timeout")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "0")
            .args(["rec"]),
        online("empty and padded values")
            .envs(&[
                ("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", ""),
                ("PROC_WRAPPER_API_RETRY_DELAY_SECONDS", " 7 "),
                ("PROC_WRAPPER_SEND_HOSTNAME", " TRUE "),
                ("PROC_WRAPPER_TASK_VERSION_TEXT", ""),
            ])
            .args(["rec"])
            .differs(
                "README D29: an empty PROC_WRAPPER_TASK_VERSION_TEXT is sent as null by ours, as \"\" by 6.0.2",
                &["requests[0].body.task_version_text"],
                |ours, theirs| {
                    assert_eq!(ours.body(0)["task_version_text"], serde_json::Value::Null);
                    assert_eq!(theirs.body(0)["task_version_text"], "");
                },
            ),
        online("boolean spellings")
            .envs(&[
                ("PROC_WRAPPER_SEND_HOSTNAME", "1"),
                ("PROC_WRAPPER_TASK_IS_SERVICE", "true"),
                ("PROC_WRAPPER_SEND_PID", "yes"),
                ("PROC_WRAPPER_PREVENT_OFFLINE_EXECUTION", "0"),
            ])
            .args(["rec"]),
        scenario("offline mode as 1")
            .env("PROC_WRAPPER_OFFLINE_MODE", "1")
            .args(["rec"]),
        online("unknown log level")
            .env("PROC_WRAPPER_LOG_LEVEL", "LOUD")
            .args(["rec"])
            .differs(
                "README D15: an unknown PROC_WRAPPER_LOG_LEVEL gives INFO in ours; 6.0.2 says it defaults to INFO, but its warning configures Python's logging first, so it logs at WARNING without timestamps and sends wrapper_log_level WARNING",
                &["requests[0].body.wrapper_log_level", "log_clock"],
                |ours, theirs| {
                    assert_eq!(ours.body(0)["wrapper_log_level"], "INFO");
                    assert_eq!(theirs.body(0)["wrapper_log_level"], "WARNING");
                },
            ),
        online("base URL with a trailing slash")
            .env("PROC_WRAPPER_API_BASE_URL", "{API}/")
            .args(["rec"]),
    ]
}

fn statuses_over_udp() -> Vec<Scenario> {
    let listener = [
        ("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE"),
        ("PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT", "{PORT}"),
        // 6.0.2 reads the socket when it wakes up.
        ("PROC_WRAPPER_PROCESS_CHECK_INTERVAL_SECONDS", "1"),
    ];
    vec![
        online("status update over UDP")
            .envs(&listener)
            .args(["-c", "rec; waitrel"])
            .step(
                When::Waiting(1),
                Action::Udp(
                    "{\"success_count\": 3, \"error_count\": 1, \"last_status_message\": \"half\", \"extra\": \"x\"}\n"
                        .into(),
                ),
            )
            .step(When::Requests(2), Action::Release),
        online("status update in two datagrams")
            .envs(&listener)
            .args(["-c", "rec; waitrel"])
            .step(When::Waiting(1), Action::Udp("{\"success_count\":".into()))
            .step(When::Waiting(1), Action::Udp(" 7}\n".into()))
            .step(When::Requests(2), Action::Release),
        // 6.0.2 discards every message here, so its child is ended by the timeout.
        online("status update larger than the limit")
            .envs(&listener)
            .env("PROC_WRAPPER_STATUS_UPDATE_MESSAGE_MAX_BYTES", "100")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "3")
            .args(["-c", "rec; waitrel"])
            .step(
                When::Waiting(1),
                Action::Udp(format!("{{\"last_status_message\": \"{}\"}}\n", "x".repeat(200))),
            )
            .step(When::Waiting(1), Action::Udp("{\"success_count\": 2}\n".into()))
            .step(When::Requests(2), Action::Release)
            .differs(
                "README D33: UDP status messages larger than --status-update-message-max-bytes are discarded correctly (6.0.2 compares its 4096-byte buffer with the limit and drops every message)",
                &["exit", "requests[1]", "requests[2]", "steps[2]", "summary"],
                |ours, theirs| {
                    assert_eq!(ours.exit(), "exit 0");
                    assert_eq!(ours.body(1), &serde_json::json!({"status": "RUNNING", "success_count": 2}));
                    assert_eq!(theirs.exit(), "exit 1");
                    assert_eq!(statuses(theirs), ["POST RUNNING", "PATCH TERMINATED_AFTER_TIME_OUT"]);
                },
            ),
        online("status update port, README spelling")
            .envs(&[
                ("PROC_WRAPPER_ENABLE_STATUS_UPDATE_LISTENER", "TRUE"),
                ("PROC_WRAPPER_STATUS_UPDATE_PORT", "{PORT}"),
            ])
            .args(["rec"])
            .differs(
                "README D3: both spellings are read where 6.0.2's code and README disagree (PROC_WRAPPER_STATUS_UPDATE_PORT)",
                &["requests[0].body.status_update_port", "env[0].PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT"],
                |ours, theirs| {
                    assert_eq!(ours.child_env(0, "PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT"), Some("{PORT}"));
                    assert_eq!(theirs.child_env(0, "PROC_WRAPPER_STATUS_UPDATE_SOCKET_PORT"), Some("2373"));
                },
            ),
    ]
}

fn faults() -> Vec<Scenario> {
    let release_after_creation = |s: Scenario, faults: Vec<Fault>| {
        s.args(["-c", "rec; waitrel"])
            .step(When::Requests(1), Action::Faults(faults))
            .step(When::Waiting(1), Action::Release)
    };
    vec![
        quick(online("api unreachable"))
            .env("PROC_WRAPPER_API_BASE_URL", "{DEAD}")
            .args(["rec"]),
        quick(online("api unreachable, prevent offline execution"))
            .env("PROC_WRAPPER_API_BASE_URL", "{DEAD}")
            .args(["-p", "rec"]),
        quick(online("creation 400")).faults([Fault::Status(400)]).args(["rec"]),
        quick(online("creation 403, prevent offline execution"))
            .faults([Fault::Status(403)])
            .args(["-p", "rec"]),
        quick(online("creation 404, prevent offline execution"))
            .faults([Fault::Status(404)])
            .args(["-p", "rec"]),
        quick(online("creation 500")).faults([Fault::Status(500)]).args(["rec"]),
        quick(online("creation 500, failing child"))
            .faults([Fault::Status(500)])
            .args(["-c", "rec; exit 6"]),
        quick(online("wrong API key"))
            .env("PROC_WRAPPER_API_KEY", "wrong")
            .args(["rec"]),
        quick(online("creation 503 then created"))
            .env("PROC_WRAPPER_API_TASK_CREATION_ERROR_TIMEOUT_SECONDS", "20")
            .faults([Fault::RetryAfter(503, "1".into())])
            .args(["rec"]),
        quick(online("creation 429 then created"))
            .env("PROC_WRAPPER_API_TASK_CREATION_ERROR_TIMEOUT_SECONDS", "20")
            .faults([Fault::Status(429)])
            .args(["rec"]),
        quick(online("creation 409 then created"))
            .env(
                "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_RETRY_DELAY_SECONDS",
                "1",
            )
            .faults([Fault::Status(409)])
            .args(["rec"]),
        quick(online("creation conflict outlasts its timeout"))
            .env(
                "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_RETRY_DELAY_SECONDS",
                "1",
            )
            .env(
                "PROC_WRAPPER_API_TASK_EXECUTION_CREATION_CONFLICT_TIMEOUT_SECONDS",
                "2",
            )
            .faults(vec![Fault::Status(409); 5])
            .args(["rec"]),
        quick(online("creation connection dropped then created"))
            .env("PROC_WRAPPER_API_TASK_CREATION_ERROR_TIMEOUT_SECONDS", "4")
            .faults([Fault::Drop])
            .args(["rec"]),
        quick(online("creation answered with a body that is not JSON"))
            .faults([Fault::Body(201, "text/plain".into(), "created, sort of".into())])
            .args(["rec"]),
        quick(online("creation stalls"))
            .env("PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS", "1")
            .faults([Fault::Stall])
            .args(["rec"]),
        online("update 409 stops the child")
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1")
            .args(["-c", "rec; waitrel"])
            .step(When::Requests(1), Action::StopExecution(1))
            .differs(
                "README D32: a 409 on an update stops the child's process group before the wrapper exits 75",
                &["alive"],
                |ours, theirs| {
                    assert_eq!(ours.exit(), "exit 75");
                    assert_eq!(ours.alive, 0, "ours stops the child");
                    assert_eq!(theirs.alive, 1, "6.0.2 leaves the child running");
                },
            ),
        // With no retry delay, ours sometimes starts the next attempt before it has seen the
        // 409 (reported); the delay keeps this scenario about the 409 itself.
        // The stop is asked for before the child exits, so the failed attempt's update
        // always meets it (without the wait, a fast wrapper could send it first). No delay
        // before the retry: the 409 must end the run before a second attempt starts.
        quick(online("failed attempt update 409"))
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "1")
            .args(["-c", "rec; waitrel; exit 3"])
            .step(When::Requests(1), Action::StopExecution(1))
            .step(When::Waiting(1), Action::Release),
        release_after_creation(quick(online("final update 500")), vec![Fault::Status(500)]),
        release_after_creation(
            quick(online("final update 503 retried"))
                .env("PROC_WRAPPER_API_FINAL_UPDATE_TIMEOUT_SECONDS", "20"),
            vec![Fault::RetryAfter(503, "1".into())],
        ),
        release_after_creation(
            quick(online("final update connection dropped")),
            vec![Fault::Drop],
        ),
        quick(online("heartbeat 500"))
            .env("PROC_WRAPPER_API_HEARTBEAT_INTERVAL_SECONDS", "1")
            .args(["-c", "rec; waitrel"])
            .step(When::Requests(1), Action::Faults(vec![Fault::Status(500)]))
            .step(When::Requests(3), Action::Release),
    ]
}

fn log_tails() -> Vec<Scenario> {
    let lines = "rec; echo out1; echo err1 >&2; echo out2; echo err2 >&2";
    vec![
        online("log tail on failure, merged")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "3")
            .args(["-c", &format!("{lines}; exit 2")]),
        online("log tail on failure, separate")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "3")
            .env("PROC_WRAPPER_MERGE_STDOUT_AND_STDERR_LOGS", "FALSE")
            .args(["-c", &format!("{lines}; exit 2")]),
        online("log tail on success")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_SUCCESS", "2")
            .args(["-c", "rec; echo a; echo b; echo c"]),
        online("log tail not sent on success")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "2")
            .args(["-c", "rec; echo a"]),
        online("log tail on timeout")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_TIMEOUT", "2")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .args(["-c", "rec; echo a; echo b; echo c; waitrel"]),
        online("log tail across retries")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "3")
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "1")
            .args(["-c", "rec; echo run $(wc -l < \"$REC/runs\"); exit 1"]),
        online("log tail of long lines")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "2")
            .env("PROC_WRAPPER_MAX_LOG_LINE_LENGTH", "10")
            .args(["-c", "rec; echo abcdefghijklmnop; echo short; exit 1"])
            .differs(
                "README D34: log tail lines that were truncated keep their line ending",
                &["requests[1].body.debug_log_tail"],
                |ours, theirs| {
                    assert_eq!(last_body(ours)["debug_log_tail"], "abcdefg...\nshort\n");
                    assert_eq!(last_body(theirs)["debug_log_tail"], "abcdefg...short\n");
                },
            ),
        online("log tail without stdout")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "3")
            .env("PROC_WRAPPER_IGNORE_STDOUT", "TRUE")
            .env("PROC_WRAPPER_MERGE_STDOUT_AND_STDERR_LOGS", "FALSE")
            .args(["-c", &format!("{lines}; exit 2")]),
        online("log tail without stderr")
            .env("PROC_WRAPPER_NUM_LOG_LINES_SENT_ON_FAILURE", "3")
            .env("PROC_WRAPPER_IGNORE_STDERR", "TRUE")
            .args(["-c", &format!("{lines}; exit 2")]),
    ]
}

fn values() -> Vec<Scenario> {
    vec![
        online("input value sent")
            .env("PROC_WRAPPER_SEND_INPUT_VALUE", "1")
            .env("PROC_WRAPPER_INPUT_VALUE", "is cool")
            .args(["-c", "rec \"$PROC_WRAPPER_INPUT_VALUE\""]),
        online("input value option")
            .env("PROC_WRAPPER_SEND_INPUT_VALUE", "1")
            .args(["-i", "from option", "rec"])
            .differs(
                "README D30: with --send-input-value, 6.0.2 does not count -i as an input source and crashes (ValueError, exit 1, nothing run or sent); ours runs and sends it",
                &["exit", "requests", "runs", "argv", "env", "summary"],
                |ours, theirs| {
                    assert_eq!((ours.exit().as_str(), ours.runs), ("exit 0", 1));
                    assert_eq!(ours.body(0)["input_value"], "from option");
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 1", 0));
                    assert!(theirs.stderr.contains("no input value source specified"));
                },
            ),
        online("input value option, not sent")
            .args(["-i", "from option", "rec"])
            .differs(
                "README D30: ours passes the -i value to the child as PROC_WRAPPER_INPUT_VALUE; 6.0.2 ignores -i in wrapped mode unless the value is sent (and then crashes)",
                &["env[0].PROC_WRAPPER_INPUT_VALUE"],
                |ours, theirs| {
                    assert_eq!(ours.child_env(0, "PROC_WRAPPER_INPUT_VALUE"), Some("from option"));
                    assert_eq!(theirs.child_env(0, "PROC_WRAPPER_INPUT_VALUE"), None);
                },
            ),
        online("input from a named variable")
            .env("PROC_WRAPPER_INPUT_ENV_VAR_NAME", "THE_INPUT")
            .env("PROC_WRAPPER_SEND_INPUT_VALUE", "1")
            .env("THE_INPUT", "is cool")
            .args(["rec"]),
        online("json input from a named variable")
            .env("PROC_WRAPPER_INPUT_ENV_VAR_NAME", "THE_INPUT")
            .env("PROC_WRAPPER_SEND_INPUT_VALUE", "1")
            .env("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json")
            .env("THE_INPUT", r#"{"a":7}"#)
            .args(["rec"]),
        online("json input value")
            .env("PROC_WRAPPER_INPUT_VALUE", r#"{"a":7}"#)
            .env("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json")
            .env("PROC_WRAPPER_SEND_INPUT_VALUE", "1")
            .args(["rec"]),
        online("yaml input value")
            .env("PROC_WRAPPER_INPUT_VALUE", "a: 7\nb: [x]\n")
            .env("PROC_WRAPPER_INPUT_VALUE_FORMAT", "yaml")
            .env("PROC_WRAPPER_SEND_INPUT_VALUE", "1")
            .args(["rec"]),
        online("input file")
            .file("work/in", r#"{"a":7}"#)
            .env("PROC_WRAPPER_INPUT_FILENAME", "{WORK}/in")
            .env("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json")
            .env("PROC_WRAPPER_SEND_INPUT_VALUE", "1")
            .args(["rec"]),
        online("input file, format from its name")
            .file("work/in.json", r#"{"a":7}"#)
            .env("PROC_WRAPPER_INPUT_FILENAME", "{WORK}/in.json")
            .env("PROC_WRAPPER_SEND_INPUT_VALUE", "1")
            .args(["rec"]),
        online("input value written to the input file")
            .env("PROC_WRAPPER_INPUT_VALUE", "hello")
            .env("PROC_WRAPPER_INPUT_FILENAME", "{WORK}/written.txt")
            .args(["-c", "rec; cp written.txt copy.txt"]),
        online("input file filled from the creation response")
            .env("PROC_WRAPPER_INPUT_FILENAME", "{WORK}/from-server.txt")
            .args(["-c", "rec; ls > listing"]),
        online("input not sent")
            .env("PROC_WRAPPER_INPUT_ENV_VAR_NAME", "THE_INPUT")
            .env("THE_INPUT", r#"{"a":7}"#)
            .env("PROC_WRAPPER_INPUT_VALUE_FORMAT", "json")
            .args(["rec"])
            .differs(
                "README D30: with PROC_WRAPPER_INPUT_ENV_VAR_NAME set but the input not sent, 6.0.2 overwrites that variable with the text __unset__; ours leaves it",
                &["env[0].THE_INPUT"],
                |ours, theirs| {
                    assert_eq!(ours.child_env(0, "THE_INPUT"), Some(r#"{"a":7}"#));
                    assert_eq!(theirs.child_env(0, "THE_INPUT"), Some("__unset__"));
                },
            ),
        online("json result")
            .env("PROC_WRAPPER_RESULT_FILENAME", "{WORK}/result")
            .env("PROC_WRAPPER_RESULT_VALUE_FORMAT", "json")
            .args(["-c", "rec; echo '{\"b\":8}' > \"$PROC_WRAPPER_RESULT_FILENAME\""]),
        online("json result, format from its name")
            .env("PROC_WRAPPER_RESULT_FILENAME", "{WORK}/result.json")
            .args(["-c", "rec; echo '{\"b\":8}' > \"$PROC_WRAPPER_RESULT_FILENAME\""]),
        online("result file kept")
            .env("PROC_WRAPPER_RESULT_FILENAME", "{WORK}/result.json")
            .env("PROC_WRAPPER_CLEANUP_RESULT_FILE", "0")
            .args(["-c", "rec; echo '{\"b\":8}' > \"$PROC_WRAPPER_RESULT_FILENAME\""]),
        online("text result")
            .env("PROC_WRAPPER_RESULT_FILENAME", "{WORK}/result")
            .args(["-c", "rec; echo done > \"$PROC_WRAPPER_RESULT_FILENAME\""]),
        online("result of a failure is not read")
            .env("PROC_WRAPPER_RESULT_FILENAME", "{WORK}/result.json")
            .args(["-c", "rec; echo '{\"b\":8}' > \"$PROC_WRAPPER_RESULT_FILENAME\"; exit 1"]),
        online("result that is not json")
            .env("PROC_WRAPPER_RESULT_FILENAME", "{WORK}/result.json")
            .args(["-c", "rec; echo 'not json' > \"$PROC_WRAPPER_RESULT_FILENAME\""])
            .differs(
                RESULT_UNREADABLE,
                &["exit"],
                |ours, theirs| {
                    assert_eq!(ours.exit(), "exit 1");
                    assert_eq!(theirs.exit(), "exit 0");
                    assert_eq!(last_body(ours)["status"], "FAILED");
                },
            ),
        online("missing result file")
            .env("PROC_WRAPPER_RESULT_FILENAME", "{WORK}/result.json")
            .args(["rec"])
            .differs(
                RESULT_UNREADABLE,
                &["exit"],
                |ours, theirs| {
                    assert_eq!(statuses(ours), ["POST RUNNING", "PATCH FAILED"]);
                    assert_eq!(statuses(theirs), ["POST RUNNING", "PATCH FAILED"]);
                    assert_eq!(last_body(ours)["exit_code"], 1);
                    assert_eq!(ours.exit(), "exit 1");
                    assert_eq!(theirs.exit(), "exit 0");
                },
            ),
    ]
}

fn sampling() -> Vec<Scenario> {
    vec![
        online("sampled out, success")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
            .args(["rec"]),
        online("sampled out, failure reported")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
            .args(["-c", "rec; exit 4"]),
        online("sampled out, unknown command")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
            .args(["no-such-command-for-proc-wrapper"]),
        online("sampled out, failure not reported")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
            .env("PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY", "1e-10")
            .args(["-c", "rec; exit 4"]),
        online("sampled out, timeout reported")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .args(["-c", "rec; waitrel"]),
        online("sampled out, timeout not reported")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
            .env("PROC_WRAPPER_API_TIMEOUT_REPORT_PROBABILITY", "1e-10")
            .env("PROC_WRAPPER_PROCESS_TIMEOUT_SECONDS", "1")
            .args(["-c", "rec; waitrel"]),
        online("managed probability 0")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "0")
            .args(["-c", "rec; exit 4"]),
        online("every probability 0")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "0")
            .env("PROC_WRAPPER_API_FAILURE_REPORT_PROBABILITY", "0")
            .env("PROC_WRAPPER_API_TIMEOUT_REPORT_PROBABILITY", "0")
            .args(["-c", "rec; exit 4"]),
        online("known execution is not sampled")
            .env("PROC_WRAPPER_API_MANAGED_PROBABILITY", "1e-10")
            .env(
                "PROC_WRAPPER_TASK_EXECUTION_UUID",
                "d9554f00-eaeb-4a16-96e4-000000000055",
            )
            .args(["rec"]),
    ]
}

fn signals() -> Vec<Scenario> {
    let wait = ["-c", "rec; waitrel"];
    vec![
        online("SIGTERM")
            .args(wait)
            .step(When::Started, Action::Signal(Signal::SIGTERM)),
        offline("SIGTERM offline")
            .args(wait)
            .step(When::Started, Action::Signal(Signal::SIGTERM)),
        online("SIGINT")
            .args(wait)
            .step(When::Started, Action::Signal(Signal::SIGINT))
            .differs(
                "README D8: SIGINT ends with 130 (status FAILED)",
                &["exit"],
                |ours, theirs| {
                    assert_eq!(ours.exit(), "exit 130");
                    assert_eq!(theirs.exit(), "signal 2");
                    assert_eq!(statuses(ours), ["POST RUNNING", "PATCH FAILED"]);
                },
            ),
        online("SIGHUP")
            .args(wait)
            .step(When::Started, Action::Signal(Signal::SIGHUP))
            .differs(
                "README D8: SIGHUP and SIGQUIT are forwarded to the child's process group (status ABORTED), the wrapper exits 128+N",
                &["exit", "requests[1]", "alive"],
                |ours, theirs| {
                    assert_eq!(ours.exit(), "exit 129");
                    assert_eq!(statuses(ours), ["POST RUNNING", "PATCH ABORTED"]);
                    assert_eq!(ours.alive, 0);
                    assert_eq!(theirs.exit(), "signal 1");
                    assert_eq!(statuses(theirs), ["POST RUNNING"]);
                    assert_eq!(theirs.alive, 1);
                },
            ),
        online("SIGQUIT")
            .args(wait)
            .step(When::Started, Action::Signal(Signal::SIGQUIT))
            .differs(
                "README D8: SIGHUP and SIGQUIT are forwarded to the child's process group (status ABORTED), the wrapper exits 128+N",
                &["exit", "requests[1]", "alive"],
                |ours, theirs| {
                    assert_eq!(ours.exit(), "exit 131");
                    assert_eq!(statuses(ours), ["POST RUNNING", "PATCH ABORTED"]);
                    assert_eq!(theirs.exit(), "signal 3");
                    assert_eq!(statuses(theirs), ["POST RUNNING"]);
                    assert_eq!(theirs.alive, 1);
                },
            ),
        online("SIGTERM to a child that ignores it")
            .env("PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS", "1")
            .args(["-c", "trap '' TERM; rec; waitrel"])
            .step(When::Started, Action::Signal(Signal::SIGTERM)),
        online("SIGTERM while waiting to retry")
            .env("PROC_WRAPPER_TASK_MAX_RETRIES", "1")
            .env("PROC_WRAPPER_PROCESS_RETRY_DELAY_SECONDS", "30")
            .args(["-c", "rec; exit 3"])
            .step(When::Requests(2), Action::Signal(Signal::SIGTERM))
            .differs(
                "README D8: SIGTERM reports ABORTED, also while waiting to retry: 6.0.2 reports FAILED with the last attempt's exit code",
                &["requests[2].body.status"],
                |ours, theirs| {
                    assert_eq!(statuses(ours), ["POST RUNNING", "PATCH RUNNING", "PATCH ABORTED"]);
                    assert_eq!(statuses(theirs), ["POST RUNNING", "PATCH RUNNING", "PATCH FAILED"]);
                    assert_eq!(ours.exit(), "exit 0");
                },
            ),
    ]
}

/// AWS secrets from moto_server (`PROC_WRAPPER_TEST_MOTO_URL`, started by tests/run.sh).
fn aws(moto: &Moto) -> Vec<Scenario> {
    let name = Moto::unique("differential");
    let arn = moto.secret_string(
        &name,
        r#"{"username": "pg", "password": "pw", "port": 5432}"#,
    );
    let plain_arn = moto.secret_string(&Moto::unique("differential-plain"), "plain secret");
    let parameter = format!("/differential/{}", Moto::unique("p"));
    moto.parameter(&parameter, "param value", "SecureString");
    let bucket = "differential-bucket";
    let key = format!("{}.json", Moto::unique("obj"));
    moto.object(bucket, &key, r#"{"k": "from s3"}"#, "application/json");
    let with_moto = |s: Scenario| {
        s.envs(&[
            ("AWS_ENDPOINT_URL", "{MOTO}"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", procwrapper_tests::moto::REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
    };
    vec![
        with_moto(offline("secrets manager with JSONPath"))
            .env("U_FOR_PROC_WRAPPER_TO_RESOLVE", &format!("{arn}|JP:$.username"))
            .env("P_FOR_PROC_WRAPPER_TO_RESOLVE", &format!("AWS_SM:{arn}|JP:$.port"))
            .env("W_FOR_PROC_WRAPPER_TO_RESOLVE", &plain_arn)
            .args(["rec"]),
        with_moto(offline("secrets manager by name"))
            .env("N_FOR_PROC_WRAPPER_TO_RESOLVE", &format!("AWS_SM:{name}|JP:$.password"))
            .args(["rec"]),
        with_moto(offline("SSM parameter"))
            .env("S_FOR_PROC_WRAPPER_TO_RESOLVE", &format!("ssm:{parameter}"))
            .args(["rec"]),
        with_moto(offline("S3 object"))
            .env(
                "O_FOR_PROC_WRAPPER_TO_RESOLVE",
                &format!("arn:aws:s3:::{bucket}/{key}|JP:$.k"),
            )
            .args(["rec"]),
        with_moto(offline("secrets manager env location"))
            .env("PROC_WRAPPER_ENV_LOCATIONS", &arn)
            .args(["rec"]),
        with_moto(offline("AWS AppConfig location"))
            .env("A_FOR_PROC_WRAPPER_TO_RESOLVE", "aws:appconfig:app/env/profile")
            .args(["{ROOT}/bin/rec"])
            .differs(
                "README D22: AWS AppConfig locations (aws:appconfig:) are recognised and rejected with a clear error; a secret that cannot be resolved stops the wrapper (exit 78)",
                &["exit", "runs", "argv", "env", "summary"],
                |ours, theirs| {
                    assert_eq!((ours.exit().as_str(), ours.runs), ("exit 78", 0));
                    assert!(ours.stderr.contains("AppConfig"));
                    // 6.0.2 fails to fetch it from moto and runs with a partial environment.
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 0", 1));
                },
            ),
        with_moto(offline("missing secret"))
            .env(
                "M_FOR_PROC_WRAPPER_TO_RESOLVE",
                "arn:aws:secretsmanager:us-east-2:123456789012:secret:no-such-secret",
            )
            .args(["{ROOT}/bin/rec"])
            .differs(
                "README D16: a secret that cannot be resolved stops the wrapper (exit 78)",
                &["exit", "runs", "argv", "env", "summary"],
                |ours, theirs| {
                    assert_eq!((ours.exit().as_str(), ours.runs), ("exit 78", 0));
                    assert_eq!((theirs.exit().as_str(), theirs.runs), ("exit 0", 1));
                },
            ),
    ]
}

fn summary_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[test]
fn differential() {
    let w = wrappers();
    let scenarios: Vec<Scenario> = [
        basics(),
        commands(),
        environment(),
        secrets(),
        lifecycle(),
        options(),
        parsing(),
        runtime_metadata(),
        statuses_over_udp(),
        faults(),
        log_tails(),
        values(),
        sampling(),
        signals(),
    ]
    .into_iter()
    .flatten()
    .collect();
    Suite {
        title: "wrapped mode",
        wrappers: &w,
        rules: rules(),
        // No fix is in flight: every difference is declared.
        pending: Vec::new(),
        parallel: PARALLEL,
        moto: "",
        summary_file: summary_file("differential-summary.txt"),
    }
    .run(&scenarios);
}

#[test]
fn differential_aws() {
    let w = wrappers();
    let moto = Moto::connect();
    Suite {
        title: "AWS secrets through moto_server",
        wrappers: &w,
        rules: rules(),
        // No fix is in flight: every difference is declared.
        pending: Vec::new(),
        parallel: PARALLEL,
        moto: &moto.endpoint,
        summary_file: summary_file("differential-aws-summary.txt"),
    }
    .run(&aws(&moto));
}
