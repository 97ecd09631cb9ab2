//! Secret fetching and resolution through the real `proc_wrapper` binary, with AWS reached
//! through the moto_server that `tests/run.sh` starts. Each test dumps the child's
//! environment and checks what it received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Command;

use procwrapper_tests::moto::Moto;
use procwrapper_tests::wrapper::{
    assert_absent, child_env, offline, parse_env, run_with_pid, stderr, stdout,
};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// `proc_wrapper` in offline mode, in `tests/data`, with `vars`.
fn wrapper(vars: &[(&str, &str)]) -> Command {
    let mut cmd = offline(env!("CARGO_BIN_EXE_proc_wrapper"));
    cmd.current_dir(DATA).envs(vars.iter().copied());
    cmd
}

/// [`wrapper`] with the AWS settings that reach `moto`.
fn with_moto(moto: &Moto, vars: &[(&str, &str)]) -> Command {
    let mut cmd = wrapper(vars);
    cmd.envs(moto.env());
    cmd
}

fn task_config(env: &HashMap<String, String>) -> serde_json::Value {
    serde_json::from_str(&env["TASK_CONFIG"]).unwrap()
}

#[test]
fn plain_value_with_json_path() {
    for loc in [
        r#"PLAIN:{"a": "bug"}!json|JP:$.a"#,
        r#"PLAIN:{"a": "bug"}|JP:$.a"#,
    ] {
        let env = child_env(&mut wrapper(&[(
            "SOME_ENV_FOR_PROC_WRAPPER_TO_RESOLVE",
            loc,
        )]));
        assert_eq!(env["SOME_ENV"], "bug");
        assert!(!env.contains_key("SOME_ENV_FOR_PROC_WRAPPER_TO_RESOLVE"));
    }
}

#[test]
fn empty_env_locations_are_fine() {
    for locs in ["", "  ", "PLAIN:{}", "PLAIN:{}!json", ","] {
        let out = wrapper(&[("PROC_WRAPPER_ENV_LOCATIONS", locs)])
            .args(["--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{locs:?}: {}", stderr(&out));
    }
}

#[test]
fn env_references_and_json_paths_into_them() {
    let env = child_env(&mut wrapper(&[
        ("ENV_SOME_ENV_FOR_PROC_WRAPPER_TO_RESOLVE", "ANOTHER_VAR"),
        ("ANOTHER_VAR", "env resolution works"),
        (
            "ENV_JP_FOR_PROC_WRAPPER_TO_RESOLVE",
            "JSON_VAR|JP:$.password",
        ),
        ("JSON_VAR", r#"{"password": "foobar"}"#),
        ("CHAINED_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:SOME_ENV"),
    ]));
    assert_eq!(env["SOME_ENV"], "env resolution works");
    assert_eq!(env["JP"], "foobar");
    // Resolved in a later pass, once SOME_ENV exists.
    assert_eq!(env["CHAINED"], "env resolution works");
}

#[test]
fn json_config_files_as_env_locations() {
    for loc in [
        "FILE:config.json",
        "file://config.json",
        "config.json",
        "config_json.txt!json",
    ] {
        let env = child_env(wrapper(&[]).args(["-e", loc]));
        assert_eq!(env["animal"], "dog", "{loc}");
        assert_eq!(
            env["dimensions"], r#"{"height": 26, "weight": 66}"#,
            "{loc}"
        );
    }
}

#[test]
fn env_locations_merge_by_strategy() {
    for (strategy, expected) in [
        ("SHALLOW", serde_json::json!({"height": 23})),
        ("REPLACE", serde_json::json!({"height": 23, "weight": 66})),
        ("DEEP", serde_json::json!({"height": 23, "weight": 66})),
    ] {
        let env = child_env(&mut wrapper(&[
            ("PROC_WRAPPER_ENV_LOCATIONS", "config.json,test.env"),
            ("PROC_WRAPPER_CONFIG_MERGE_STRATEGY", strategy),
        ]));
        assert_eq!(env["animal"], "cat", "{strategy}");
        let dims: serde_json::Value = serde_json::from_str(&env["dimensions"]).unwrap();
        assert_eq!(dims, expected, "{strategy}");
    }
}

#[test]
fn config_locations_and_config_references() {
    let env = child_env(
        wrapper(&[(
            "FROM_CONFIG_FOR_PROC_WRAPPER_TO_RESOLVE",
            "CONFIG:$.dimensions.height",
        )])
        .args(["--config", "config.json"])
        .args([
            "--config",
            r#"PLAIN:{"b__to_resolve": "CONFIG:$.animal"}!json"#,
        ]),
    );
    assert_eq!(env["FROM_CONFIG"], "26");
    let config = task_config(&env);
    assert_eq!(config["animal"], "dog");
    assert_eq!(config["b"], "dog");
    assert!(config.get("b__to_resolve").is_none());
}

#[test]
fn an_unresolvable_reference_exits_78_naming_the_variable() {
    let out = wrapper(&[("X_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:NOPE")])
        .args(["--", "touch", "/nonexistent/never-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(err.contains("could not resolve X (from ENV:NOPE)"), "{err}");
    assert!(err.contains("NOPE is not set"), "{err}");
}

#[test]
fn a_missing_env_file_exits_78_naming_the_location() {
    let out = wrapper(&[])
        .args(["-e", "missing.env", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("env location 'FILE:missing.env'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn fail_fast_stops_at_the_first_failure_unless_disabled() {
    let vars = [
        ("A_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:missing-a.json"),
        ("B_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:missing-b.json"),
    ];
    let out = wrapper(&vars).args(["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(stderr(&out).matches("could not resolve").count(), 1);
    let out = wrapper(&vars)
        .args(["--no-fail-fast-config-resolution", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(
        err.contains("could not resolve A ") && err.contains("could not resolve B "),
        "{err}"
    );
}

#[test]
fn resolution_can_be_disabled() {
    let env = child_env(&mut wrapper(&[
        ("PROC_WRAPPER_RESOLVE_SECRETS", "FALSE"),
        ("X_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:y"),
    ]));
    assert_eq!(env["X_FOR_PROC_WRAPPER_TO_RESOLVE"], "PLAIN:y");
    assert!(!env.contains_key("X"));
}

#[test]
fn env_output_file_and_exit_after_writing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.env");
    let out = wrapper(&[("SOME_VALUE_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:xyz")])
        .args(["--exit-after-writing-variables", "--env-output-filename"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.lines().any(|l| l == "SOME_VALUE='xyz'"), "{text}");

    let json = dir.path().join("out");
    let out = wrapper(&[
        ("SOME_VALUE_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:xyz"),
        ("PROC_WRAPPER_ENV_OUTPUT_FORMAT", "json"),
    ])
    .args(["--exit-after-writing-variables", "--env-output-filename"])
    .arg(&json)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(value["SOME_VALUE"], "xyz");
}

#[test]
fn env_output_file_exists_during_the_run_and_is_deleted_after() {
    let dir = tempfile::tempdir().unwrap();
    let out = wrapper(&[("PROC_WRAPPER_ENV_OUTPUT_FILENAME", "output.env")])
        .current_dir(dir.path())
        .args(["--", "ls", "output.env"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!dir.path().join("output.env").exists());
}

#[test]
fn config_output_file_in_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let out = wrapper(&[])
        .args([
            "--config",
            r#"PLAIN:{"a": {"d": "bc"}, "b__to_resolve": "CONFIG:$.a.d"}!json"#,
        ])
        .args([
            "--config-output-format",
            "yaml",
            "--exit-after-writing-variables",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("config.yml")).unwrap();
    assert!(text.contains("b: bc"), "{text}");
}

#[test]
fn config_ttl_refreshes_values_before_a_retry() {
    for (ttl, expected) in [(Some("0"), "v1\nv2\n"), (None, "v1\nv1\n")] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("value.txt"), "v1").unwrap();
        let mut cmd = wrapper(&[("X_FOR_PROC_WRAPPER_TO_RESOLVE", "FILE:value.txt")]);
        cmd.current_dir(dir.path()).args(["-r", "1"]);
        if let Some(ttl) = ttl {
            cmd.args(["--config-ttl", ttl]);
        }
        let script = "echo $X >> seen; [ -e marker ] && exit 0; touch marker; \
                      printf v2 > value.txt; exit 1";
        let out = cmd.args(["--", "sh", "-c", script]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
        assert_eq!(seen, expected, "ttl {ttl:?}");
    }
}

fn assert_hidden(secret: &str, args: &[&str], vars: &[(&str, &str)], moto: &Moto) {
    let out = with_moto(moto, vars)
        .args(["-l", "DEBUG"])
        .args(args)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_absent(&stderr(&out), &[secret], "secret in the log");
}

#[test]
fn secret_values_never_reach_the_log_unless_log_secrets() {
    let moto = Moto::connect();
    let arn = moto.secret_string(&Moto::unique("logsecret"), "s3cr3t-from-sm");
    let vars = [
        ("A_FOR_PROC_WRAPPER_TO_RESOLVE", arn.as_str()),
        ("B_FOR_PROC_WRAPPER_TO_RESOLVE", "PLAIN:plain-s3cr3t"),
    ];
    assert_hidden("s3cr3t", &[], &vars, &moto);
    // Failures name the location but hide PLAIN text.
    let bad = [(
        "C_FOR_PROC_WRAPPER_TO_RESOLVE",
        "PLAIN:{not json s3cr3t|JP:$.a",
    )];
    assert_hidden("s3cr3t", &[], &bad, &moto);
    let bad_env = [
        ("C_FOR_PROC_WRAPPER_TO_RESOLVE", "ENV:X|JP:$.a"),
        ("X", "s3cr3t{"),
    ];
    assert_hidden("s3cr3t", &[], &bad_env, &moto);
    // Also when the secret is a malformed dotenv file.
    let dotenv_arn = moto.secret_string(&Moto::unique("baddotenv"), "A='s3cr3t\n");
    assert_hidden("s3cr3t", &["-e", &dotenv_arn], &[], &moto);

    let out = with_moto(&moto, &vars)
        .args(["-l", "DEBUG", "--log-secrets", "--", "true"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("s3cr3t-from-sm") && err.contains("plain-s3cr3t"),
        "{err}"
    );
}

#[test]
fn secrets_manager_string_and_binary_secrets() {
    let moto = Moto::connect();
    let pw = moto.secret_string(&Moto::unique("pw"), "Secret PW");
    let pw2 = moto.secret_string(&Moto::unique("pw2"), "Secret PW 2");
    let bin = moto.secret_binary(&Moto::unique("bin"), b"\x00\x01binary");
    for prefix in ["AWS_SM_", ""] {
        let some = format!("{prefix}SOME_ENV_FOR_PROC_WRAPPER_TO_RESOLVE");
        let another = format!("{prefix}ANOTHER_ENV_FOR_PROC_WRAPPER_TO_RESOLVE");
        let env = child_env(&mut with_moto(
            &moto,
            &[
                (&some, &pw),
                (&another, &pw2),
                ("BIN_FOR_PROC_WRAPPER_TO_RESOLVE", &bin),
            ],
        ));
        assert_eq!(env["SOME_ENV"], "Secret PW");
        assert_eq!(env["ANOTHER_ENV"], "Secret PW 2");
        assert_eq!(env["BIN"], "AAFiaW5hcnk=");
    }
    // By name, and by name with the provider code.
    let name = Moto::unique("byname");
    moto.secret_string(&name, "named");
    let env = child_env(&mut with_moto(
        &moto,
        &[("N_FOR_PROC_WRAPPER_TO_RESOLVE", &format!("AWS_SM:{name}"))],
    ));
    assert_eq!(env["N"], "named");
}

#[test]
fn secrets_manager_json_secret_with_json_paths_and_as_env_location() {
    let moto = Moto::connect();
    let arn = moto.secret_string(
        &Moto::unique("db"),
        r#"{"username": "dbuser", "password": "dbpass"}"#,
    );
    let user = format!("{arn}|JP:$.username");
    let pass = format!("{arn}|JP:$.password");
    let env = child_env(&mut with_moto(
        &moto,
        &[
            ("DB_USER_FOR_PROC_WRAPPER_TO_RESOLVE", &user),
            ("DB_PASS_FOR_PROC_WRAPPER_TO_RESOLVE", &pass),
        ],
    ));
    assert_eq!(env["DB_USER"], "dbuser");
    assert_eq!(env["DB_PASS"], "dbpass");

    let dotenv = moto.secret_string(
        &Moto::unique("envs"),
        "  USERNAME=theuser\n  PASSWORD=thepass\n",
    );
    let env = child_env(with_moto(&moto, &[]).args(["-e", &dotenv]));
    assert_eq!(env["USERNAME"], "theuser");
    assert_eq!(env["PASSWORD"], "thepass");
}

#[test]
fn a_missing_secret_exits_78_naming_variable_and_location() {
    let moto = Moto::connect();
    let arn = "arn:aws:secretsmanager:us-east-2:123456789012:secret:does-not-exist-AbCdEf";
    let out = with_moto(&moto, &[("DB_PASS_FOR_PROC_WRAPPER_TO_RESOLVE", arn)])
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(err.contains("could not resolve DB_PASS"), "{err}");
    assert!(err.contains(arn), "{err}");
}

#[test]
fn ssm_parameters_in_all_address_forms() {
    let moto = Moto::connect();
    let base = format!("/{}", Moto::unique("app"));
    let envs = format!("{base}/envs");
    moto.parameter(&envs, "USERNAME=theuser\nPASSWORD=thepass\n", "String");
    let hosts = format!("{base}/hosts");
    moto.parameter(&hosts, "host1,host2", "StringList");
    for form in [
        format!("ssm:{envs}:1"),
        format!("AWS_SSM:{envs}"),
        format!("ssm:{envs}"),
        format!("arn:aws:ssm:us-east-2:123456789012:parameter{envs}"),
    ] {
        let env = child_env(with_moto(&moto, &[]).args(["-e", &format!("{form}!dotenv")]));
        assert_eq!(env["USERNAME"], "theuser", "{form}");
        assert_eq!(env["PASSWORD"], "thepass", "{form}");
        let env = child_env(&mut with_moto(
            &moto,
            &[(
                "U_FOR_PROC_WRAPPER_TO_RESOLVE",
                &format!("{form}!dotenv|JP:$.USERNAME"),
            )],
        ));
        assert_eq!(env["U"], "theuser", "{form}");
    }
    for form in [
        format!("ssm:{hosts}:1"),
        format!("AWS_SSM:{hosts}"),
        format!("ssm:{hosts}"),
        format!("arn:aws:ssm:us-east-2:123456789012:parameter{hosts}"),
    ] {
        let config = serde_json::json!({ "hosts__to_resolve": form }).to_string();
        let env =
            child_env(with_moto(&moto, &[]).args(["--config", &format!("PLAIN:{config}!json")]));
        assert_eq!(
            task_config(&env)["hosts"],
            serde_json::json!(["host1", "host2"]),
            "{form}"
        );
    }
}

#[test]
fn s3_yaml_objects_by_suffix_extension_and_content_type() {
    let moto = Moto::connect();
    let bucket = Moto::unique("bucket").to_lowercase();
    let yaml = "db:\n  username: yuser\n  password: ypw\n";
    let cases = [
        ("db", "text/plain", "!YAML"),
        ("db.yml", "text/plain", ""),
        ("db.yaml", "text/plain", ""),
        ("db1", "application/yaml", ""),
        ("db2", "application/x-yaml", ""),
        ("db3", "text/vnd.yaml", ""),
        ("db4", "text/yaml", ""),
        ("db5", "text/x-yaml; charset=utf-8", ""),
    ];
    for (key, content_type, suffix) in cases {
        moto.object(&bucket, key, yaml, content_type);
        let loc = format!("arn:aws:s3:::{bucket}/{key}{suffix}");
        let env = child_env(with_moto(&moto, &[]).args(["--config", &loc]));
        let config = task_config(&env);
        assert_eq!(config["db"]["username"], "yuser", "{key}");
        assert_eq!(config["db"]["password"], "ypw", "{key}");
    }
}

/// S3 keys are literal, as boto3 (and so 6.0.2) reads them: `a/../b.env` is the object of
/// that name, not `b.env`.
#[test]
fn s3_keys_with_dot_segments_are_literal() {
    let moto = Moto::connect();
    let bucket = Moto::unique("dots").to_lowercase();
    moto.object(&bucket, "b.env", "WHICH=normalized\n", "text/plain");
    for (key, which) in [
        ("a/../b.env", "dot-dot"),
        ("./c.env", "dot"),
        ("d//e.env", "double-slash"),
    ] {
        moto.object(&bucket, key, &format!("WHICH={which}\n"), "text/plain");
        let loc = format!("arn:aws:s3:::{bucket}/{key}");
        let env = child_env(with_moto(&moto, &[]).args(["-e", &loc]));
        assert_eq!(env["WHICH"], which, "{key}");
    }
}

#[test]
fn one_secret_referenced_many_times_is_fetched_once() {
    let moto = Moto::connect();
    let arn = moto.secret_string(&Moto::unique("many"), r#"{"a": "1", "b": "2"}"#);
    let a = format!("{arn}|JP:$.a");
    let b = format!("{arn}|JP:$.b");
    let out = with_moto(
        &moto,
        &[
            ("A_FOR_PROC_WRAPPER_TO_RESOLVE", &a),
            ("B_FOR_PROC_WRAPPER_TO_RESOLVE", &b),
            ("C_FOR_PROC_WRAPPER_TO_RESOLVE", &arn),
        ],
    )
    .args(["-l", "DEBUG", "--", "sh", "-c", "echo $A$B"])
    .output()
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "12\n",
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("1 fetch(es) from secret providers"),
        "{}",
        stderr(&out)
    );
}

/// `sh` prints its PID and environment: with `--exec` it is the wrapper's own process.
const PID_AND_ENV: &str = "echo PID=$$; env";

/// Runs `cmd`; returns the PID it was started with and the environment its output lists.
fn exec_output(cmd: &mut Command) -> (u32, HashMap<String, String>) {
    let (pid, out) = run_with_pid(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (pid, parse_env(&stdout(&out)))
}

#[test]
fn exec_resolves_secrets_then_becomes_the_command() {
    let moto = Moto::connect();
    let arn = moto.secret_string(&Moto::unique("exec"), r#"{"password": "s3cr3t"}"#);
    let (pid, env) = exec_output(
        with_moto(
            &moto,
            &[(
                "DB_PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE",
                &format!("{arn}|JP:$.password"),
            )],
        )
        .args(["--exec", "--", "sh", "-c", PID_AND_ENV]),
    );
    assert_eq!(
        env["PID"],
        pid.to_string(),
        "the command replaced proc_wrapper"
    );
    assert_eq!(env["DB_PASSWORD"], "s3cr3t");
    assert!(!env.contains_key("DB_PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE"));
    assert!(
        !env.contains_key("PROC_WRAPPER_PROCESS_TERMINATION_GRACE_PERIOD_SECONDS"),
        "no wrapped-mode additions"
    );
}

#[test]
fn exec_runs_nothing_when_a_secret_cannot_be_resolved() {
    let out = wrapper(&[(
        "DB_PASSWORD_FOR_PROC_WRAPPER_TO_RESOLVE",
        "ENV:NOT_SET_ANYWHERE",
    )])
    .args(["--exec", "--", "sh", "-c", "echo RAN"])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("RAN"));
    assert!(stderr(&out).contains("DB_PASSWORD"), "{}", stderr(&out));
}

/// moto checks signatures once its IAM authentication is on (`reset-auth`): it recomputes
/// each request's SigV4 signature with botocore's signer from what it received. The
/// wrapper's Secrets Manager, SSM and S3 calls (awkward keys included) pass, and so do its
/// STS `AssumeRole` (a form post signed with a user's keys) and the calls signed with the
/// role's temporary credentials; the same calls signed with a wrong secret key are refused
/// with `SignatureDoesNotMatch`, which shows the check is real.
#[test]
fn moto_verifies_the_signatures() {
    let moto = Moto::connect_iam();
    // Set up without authentication, then require it.
    moto.reset_auth("inf");
    let (key, secret) = moto.iam_user(&Moto::unique("signer"));
    let role = moto.iam_role(&Moto::unique("role"));
    let sm = moto.secret_string(&Moto::unique("signed"), "verified secret");
    let param = format!("/{}/db password", Moto::unique("signed"));
    moto.parameter(&param, "verified parameter", "SecureString");
    let bucket = Moto::unique("signed").to_lowercase();
    let keys = [
        "plain.env",
        "dir/sub dir/a+b=c&d.env",
        "100% ünï ✓.env",
        "~tilde(1)*.env",
        "a//double.env",
        "a/../dots.env",
        "./dot.env",
    ];
    for (i, k) in keys.iter().enumerate() {
        moto.object(&bucket, k, &format!("OBJECT{i}=object-{i}\n"), "text/plain");
    }
    moto.reset_auth("0");
    let run = |secret: &str| {
        let mut cmd = wrapper(&[
            ("SM_FOR_PROC_WRAPPER_TO_RESOLVE", sm.as_str()),
            (
                "PARAM_FOR_PROC_WRAPPER_TO_RESOLVE",
                &format!("AWS_SSM:{param}"),
            ),
        ]);
        cmd.envs(moto.env())
            .env("AWS_ACCESS_KEY_ID", &key)
            .env("AWS_SECRET_ACCESS_KEY", secret);
        for k in keys {
            cmd.args(["-e", &format!("arn:aws:s3:::{bucket}/{k}")]);
        }
        cmd
    };
    let env = child_env(&mut run(&secret));
    assert_eq!(env["SM"], "verified secret");
    assert_eq!(env["PARAM"], "verified parameter");
    for i in 0..keys.len() {
        assert_eq!(
            env[&format!("OBJECT{i}")],
            format!("object-{i}"),
            "{}",
            keys[i]
        );
    }
    let out = run("not-the-secret").args(["--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("SignatureDoesNotMatch"),
        "{}",
        stderr(&out)
    );
    // An assumed role: AssumeRole signed with the user's keys, then the role's credentials.
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    let profiles = |secret: &str| {
        format!(
            "[profile base]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\
             [profile assumer]\nrole_arn = {role}\nsource_profile = base\n"
        )
    };
    for (secret, ok) in [(secret.as_str(), true), ("not-the-secret", false)] {
        std::fs::write(&config, profiles(secret)).unwrap();
        let mut cmd = run(secret);
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
            .env("AWS_PROFILE", "assumer");
        if ok {
            let env = child_env(&mut cmd);
            assert_eq!(env["SM"], "verified secret");
            assert_eq!(env["OBJECT1"], "object-1");
        } else {
            let out = cmd.args(["--", "true"]).output().unwrap();
            assert_eq!(out.status.code(), Some(78));
            let err = stderr(&out);
            assert!(
                err.contains("AssumeRole") && err.contains("SignatureDoesNotMatch"),
                "{err}"
            );
        }
    }
    moto.reset_auth("inf");
}
