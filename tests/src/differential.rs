//! Differential testing against the Python proc_wrapper 6.0.2, the oracle: a [`Scenario`] is
//! run twice, through `python -m proc_wrapper` and through our `proc_wrapper`, each against
//! its own [`FakeApi`], in its own temporary folder and a clean environment, and the two
//! [`Outcome`]s are compared: exit status, the requests to the API (volatile values
//! normalised), how often the child ran, its arguments and environment, the files left in
//! the work folder, the wrapper's standard output, its summary log line, and children still
//! alive when the wrapper exited.
//!
//! A scenario either agrees exactly, or declares a deliberate difference
//! ([`Scenario::differs`]): where the outcomes may differ, and a check that asserts our
//! behaviour (and 6.0.2's), so the suite fails when either side changes.
//!
//! The child commands of scenarios use two helper scripts that the harness puts first on
//! `PATH`:
//! * `rec [ARGS...]` records one run: it appends its PID to `$REC/runs` and writes its
//!   environment (`env -0`) and its arguments to `$REC/env.N` and `$REC/args.N`;
//! * `waitrel` waits until the harness releases it ([`Action::Release`]), recording its PID
//!   in `$REC/waiters` so the harness can tell which children outlived the wrapper.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Map, Value, json};

use crate::fake_api::{FakeApi, Fault, Recorded};
use crate::net::{free_udp_port, refused_url};

/// The variable naming the Python interpreter that has `cloudreactor-procwrapper==6.0.2`
/// (`tests/services.sh` exports it).
pub const ORIGINAL_PYTHON_VAR: &str = "PROC_WRAPPER_TEST_ORIGINAL_PYTHON";

/// The version of the original that the suite compares against.
pub const ORIGINAL_VERSION: &str = "6.0.2";
/// `wrapper_family` of 6.0.2.
pub const ORIGINAL_FAMILY: &str = "CloudReactor python proc_wrapper";
/// `wrapper_family` of ours.
pub const OUR_FAMILY: &str = "CloudReactor Rust proc_wrapper";

/// The aspects of an [`Outcome`] that are compared, in the order of the report.
pub const ASPECTS: [&str; 12] = [
    "exit",
    "requests",
    "runs",
    "argv",
    "env",
    "files",
    "alive",
    "stdout",
    "summary",
    "log_clock",
    "steps",
    "orphans",
];

/// The two programs compared.
#[derive(Debug, Clone)]
pub struct Wrappers {
    /// Our `proc_wrapper` binary.
    pub ours: PathBuf,
    /// The Python interpreter with proc_wrapper 6.0.2.
    pub python: PathBuf,
}

impl Wrappers {
    /// Our binary and the interpreter named by [`ORIGINAL_PYTHON_VAR`]. Panics (the test
    /// fails, it is not skipped) when the variable is missing or the interpreter does not have
    /// proc_wrapper 6.0.2.
    pub fn from_env(ours: &str) -> Self {
        let python = std::env::var_os(ORIGINAL_PYTHON_VAR).unwrap_or_else(|| {
            panic!(
                "{ORIGINAL_PYTHON_VAR} is not set. The differential suite compares proc_wrapper \
                 with the Python proc_wrapper {ORIGINAL_VERSION}: run it through tests/run.sh \
                 (tests/services.sh's setup_venv installs cloudreactor-procwrapper=={ORIGINAL_VERSION} \
                 into tests/.venv and exports the variable), or set {ORIGINAL_PYTHON_VAR} to a \
                 python that has it installed"
            )
        });
        let python = PathBuf::from(python);
        let out = Command::new(&python)
            .args([
                "-c",
                "import proc_wrapper, dotenv, jsonpath_ng, yaml, boto3, mergedeep; \
                 print(proc_wrapper.__version__)",
            ])
            .output()
            .unwrap_or_else(|e| {
                panic!("{ORIGINAL_PYTHON_VAR}={} cannot run: {e}", python.display())
            });
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success() && version == ORIGINAL_VERSION,
            "{ORIGINAL_PYTHON_VAR}={} must have cloudreactor-procwrapper=={ORIGINAL_VERSION} and \
             its readers (python-dotenv, jsonpath-ng, PyYAML, boto3, mergedeep); it says \
             {version:?}: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            ours: PathBuf::from(ours),
            python,
        }
    }
}

/// Which wrapper ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Our `proc_wrapper`.
    Ours,
    /// The Python proc_wrapper 6.0.2.
    Theirs,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Theirs => "6.0.2",
        }
    }
}

/// When a [`Step`] fires.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// Once the fake API has recorded at least this many requests.
    Requests(usize),
    /// Once the child has started at least this many times (`rec` ran).
    Runs(usize),
    /// Once at least this many `waitrel` helpers are waiting.
    Waiting(usize),
    /// Once a `waitrel` helper is waiting and the wrapper has logged that it started the
    /// child (6.0.2's `pid=N`, ours' `started process N`): from then on both handle a signal
    /// with the child known (before that, 6.0.2 may not have recorded it yet).
    Started,
}

/// What a [`Step`] does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer the next requests with these faults.
    Faults(Vec<Fault>),
    /// Ask the fake to stop execution `n` (from 1): its next `RUNNING` update gets 409.
    StopExecution(u32),
    /// Release the waiting `waitrel` helpers (and any later ones).
    Release,
    /// Send a signal to the wrapper.
    Signal(Signal),
    /// Send this datagram to the wrapper's status port (`{PORT}`).
    Udp(String),
}

/// One action of a scenario, taken once its condition holds while the wrapper runs. Steps
/// are taken in order; whether each was reached is compared too.
#[derive(Debug, Clone)]
pub struct Step {
    /// The condition.
    pub when: When,
    /// The action.
    pub action: Action,
}

type Check = Box<dyn Fn(&Outcome, &Outcome) + Send + Sync>;
type Apply = Box<dyn Fn(&mut Outcome, &mut Outcome) -> bool + Send + Sync>;

/// A difference that shows in many scenarios, declared once: `apply(ours, theirs)` checks
/// that ours does what is expected, removes that difference from both outcomes, and says
/// whether it found it. The summary counts the scenarios it applied to.
pub struct Rule {
    /// The README row, decision or report that the difference belongs to.
    pub reason: String,
    apply: Apply,
}

impl Rule {
    /// A rule.
    pub fn new(
        reason: &str,
        apply: impl Fn(&mut Outcome, &mut Outcome) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            reason: reason.to_owned(),
            apply: Box::new(apply),
        }
    }
}

/// Replaces `key` in the bodies of requests that both sides sent with `placeholder` where
/// ours says `mine` and 6.0.2 says `original`; true if it replaced any.
pub fn replace_body_value(
    ours: &mut Outcome,
    theirs: &mut Outcome,
    key: &str,
    mine: &Value,
    original: &Value,
    placeholder: &str,
) -> bool {
    let mut applied = false;
    for (o, t) in ours.requests.iter_mut().zip(theirs.requests.iter_mut()) {
        let (Some(ob), Some(tb)) = (o["body"].as_object_mut(), t["body"].as_object_mut()) else {
            continue;
        };
        if ob.get(key) == Some(mine) && tb.get(key) == Some(original) {
            ob.insert(key.to_owned(), json!(placeholder));
            tb.insert(key.to_owned(), json!(placeholder));
            applied = true;
        }
    }
    applied
}

/// A fix in flight: differences it will remove are marked in the failures of the summary
/// (they still fail).
pub struct Pending {
    /// The fix.
    pub note: String,
    covers: Box<dyn Fn(&Delta) -> bool + Send + Sync>,
}

impl Pending {
    /// A fix that removes the differences for which `covers` holds.
    pub fn new(note: &str, covers: impl Fn(&Delta) -> bool + Send + Sync + 'static) -> Self {
        Self {
            note: note.to_owned(),
            covers: Box::new(covers),
        }
    }
}

/// The differences every scenario has: `wrapper_family` and `wrapper_version` (README
/// "Differences" D13).
pub fn standard_rules(our_version: &str) -> Vec<Rule> {
    let version = json!(our_version);
    vec![
        Rule::new(
            "README D13: wrapper_family is \"CloudReactor Rust proc_wrapper\" (6.0.2: \"CloudReactor python proc_wrapper\")",
            |ours, theirs| {
                replace_body_value(
                    ours,
                    theirs,
                    "wrapper_family",
                    &json!(OUR_FAMILY),
                    &json!(ORIGINAL_FAMILY),
                    "<wrapper family>",
                )
            },
        ),
        Rule::new(
            "README D13: wrapper_version is the crate version (6.0.2: \"6.0.2\")",
            move |ours, theirs| {
                replace_body_value(
                    ours,
                    theirs,
                    "wrapper_version",
                    &version,
                    &json!(ORIGINAL_VERSION),
                    "<wrapper version>",
                )
            },
        ),
        Rule::new(
            "README D44: the sampling probabilities are sent under the server's names too \
             (managed_probability, failure_report_probability, timeout_report_probability), \
             equal to 6.0.2's api_* fields",
            |ours, _| {
                let mut applied = false;
                each_body(ours, |body| {
                    for name in SAMPLING {
                        if let Some(value) = body.remove(name) {
                            assert_eq!(
                                Some(&value),
                                body.get(&format!("api_{name}")),
                                "{name} equals api_{name}"
                            );
                            applied = true;
                        }
                    }
                });
                applied
            },
        ),
        Rule::new(
            "README D45-D47: ours also sends the server's deployment, error_details, \
             max_memory_mb and current_memory_mb fields, which 6.0.2 never sends",
            |ours, theirs| {
                each_body(theirs, |body| {
                    for name in OURS_ONLY {
                        assert!(!body.contains_key(name), "6.0.2 sent {name}");
                    }
                });
                let mut applied = false;
                each_body(ours, |body| {
                    for name in OURS_ONLY {
                        applied |= body.remove(name).is_some();
                    }
                });
                applied
            },
        ),
    ]
}

/// The sampling fields under the server's names (6.0.2's have `api_` before them).
const SAMPLING: [&str; 3] = [
    "managed_probability",
    "failure_report_probability",
    "timeout_report_probability",
];

/// The server's fields that only ours sends.
const OURS_ONLY: [&str; 4] = [
    "deployment",
    "error_details",
    "max_memory_mb",
    "current_memory_mb",
];

/// Calls `f` with each request body of `side` and the `task` object inside it.
fn each_body(side: &mut Outcome, mut f: impl FnMut(&mut Map<String, Value>)) {
    for request in &mut side.requests {
        let Some(body) = request["body"].as_object_mut() else {
            continue;
        };
        if let Some(task) = body.get_mut("task").and_then(Value::as_object_mut) {
            f(task);
        }
        f(body);
    }
}

enum Expect {
    Agree,
    Differ {
        reason: String,
        paths: Vec<&'static str>,
        check: Check,
    },
}

/// One scenario: the same arguments, environment and files for both wrappers.
///
/// Strings may hold placeholders, replaced per side: `{API}` (the fake API's base URL),
/// `{DEAD}` (a loopback URL where nothing listens), `{ROOT}` (the scenario's folder),
/// `{WORK}` (the work folder, the wrappers' current directory), `{REC}` (the records of the
/// helper scripts), `{PORT}` (a free UDP port for the status listener), `{ECS}` (the
/// `ECS_CONTAINER_METADATA_URI_V4` of a fake ECS metadata endpoint serving
/// `tests/fixtures/ecs`) and `{MOTO}` (the moto_server URL).
pub struct Scenario {
    /// A unique name.
    pub name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    files: Vec<(String, String)>,
    faults: Vec<Fault>,
    steps: Vec<Step>,
    expect: Expect,
    tracking: Option<String>,
    limit: Duration,
}

/// Starts a scenario.
pub fn scenario(name: &str) -> Scenario {
    Scenario {
        name: name.to_owned(),
        args: Vec::new(),
        env: Vec::new(),
        files: Vec::new(),
        faults: Vec::new(),
        steps: Vec::new(),
        expect: Expect::Agree,
        tracking: None,
        limit: Duration::from_secs(40),
    }
}

impl Scenario {
    /// Command-line arguments (the same for both; never `--`, which 6.0.2 takes as part of the
    /// command).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Several environment variables.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        for (k, v) in vars {
            self.env.push(((*k).to_owned(), (*v).to_owned()));
        }
        self
    }

    /// A file created before the run, at a path relative to `{ROOT}` (`work/x.env` is in
    /// the work folder).
    pub fn file(mut self, path: &str, content: &str) -> Self {
        self.files.push((path.to_owned(), content.to_owned()));
        self
    }

    /// Faults answering the first requests.
    pub fn faults(mut self, faults: impl IntoIterator<Item = Fault>) -> Self {
        self.faults.extend(faults);
        self
    }

    /// A step taken while the wrapper runs.
    pub fn step(mut self, when: When, action: Action) -> Self {
        self.steps.push(Step { when, action });
        self
    }

    /// The longest a side may run before it is killed (and the scenario fails).
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// A deliberate difference: `reason` names the README row or decision; the differences
    /// must lie under `paths` (an aspect such as `exit`, or a deeper path such as
    /// `requests[1].body.exit_code` or `env[0].TASK_CONFIG`; everything else must agree),
    /// and `check(ours, theirs)` asserts both sides' behaviour. The scenario fails if the
    /// sides agree, differ elsewhere, or the check fails.
    pub fn differs(
        mut self,
        reason: &str,
        paths: &[&'static str],
        check: impl Fn(&Outcome, &Outcome) + Send + Sync + 'static,
    ) -> Self {
        for p in paths {
            let aspect = &p[..p.find(['.', '[']).unwrap_or(p.len())];
            assert!(ASPECTS.contains(&aspect), "unknown aspect in {p}");
        }
        self.expect = Expect::Differ {
            reason: reason.to_owned(),
            paths: paths.to_vec(),
            check: Box::new(check),
        };
        self
    }

    /// Notes the fix that makes this scenario agree (printed when it fails).
    pub fn tracking(mut self, note: &str) -> Self {
        self.tracking = Some(note.to_owned());
        self
    }
}

/// What one wrapper did in a scenario.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which wrapper.
    pub side: Side,
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// True if it had to be killed at the scenario's limit.
    pub hung: bool,
    /// The requests as the fake recorded them.
    pub raw_requests: Vec<Recorded>,
    /// The requests, normalised (what is compared).
    pub requests: Vec<Value>,
    /// How often the child ran.
    pub runs: usize,
    /// The arguments of `rec` in each run.
    pub argv: Vec<Vec<String>>,
    /// The environment of each run, normalised.
    pub env: Vec<BTreeMap<String, String>>,
    /// The files left in the work folder (relative path → content), normalised.
    pub files: BTreeMap<String, String>,
    /// `waitrel` helpers still running a second after the wrapper exited (none released).
    pub alive: usize,
    /// Processes of the run that still held the wrapper's output open a while after it
    /// exited and had to be killed (none expected).
    pub orphans: bool,
    /// The wrapper's standard output, normalised.
    pub stdout: String,
    /// The wrapper's standard error (logs), as written.
    pub stderr: String,
    /// The summary log lines (`Task '…' succeeded … on attempt 1 / 1`), reduced to the Task's
    /// name and the attempts.
    pub summary: Vec<String>,
    /// The hours between the clock of the first log line's timestamp and UTC (0 for a log
    /// in UTC; `None` without a timestamped line).
    pub log_clock: Option<i64>,
    /// Which steps were taken.
    pub steps: Vec<bool>,
}

impl Outcome {
    /// The exit status as text: `exit N`, `signal N` or `hung`.
    pub fn exit(&self) -> String {
        if self.hung {
            "hung".to_owned()
        } else if let Some(s) = self.signal {
            format!("signal {s}")
        } else {
            format!("exit {}", self.code.unwrap_or(-1))
        }
    }

    /// The normalised requests' `METHOD STATUS` list, for messages.
    pub fn request_line(&self) -> String {
        self.requests
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap_or("?"),
                    r["body"]["status"].as_str().unwrap_or("-")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The body of the `i`th request.
    pub fn body(&self, i: usize) -> &Value {
        self.raw_requests.get(i).map_or(&Value::Null, |r| &r.body)
    }

    /// The child's environment variable `name` in run `run` (from 0).
    pub fn child_env(&self, run: usize, name: &str) -> Option<&str> {
        self.env.get(run)?.get(name).map(String::as_str)
    }

    /// The compared view.
    fn view(&self) -> Value {
        json!({
            "exit": self.exit(),
            "requests": self.requests,
            "runs": self.runs,
            "argv": self.argv,
            "env": self.env,
            "files": self.files,
            "alive": self.alive,
            "stdout": self.stdout,
            "summary": self.summary,
            "log_clock": self.log_clock,
            "steps": self.steps,
            "orphans": self.orphans,
        })
    }
}

/// A difference between the two sides: a JSON path and both values (`None` = absent).
#[derive(Debug, Clone)]
pub struct Delta {
    /// The path (`requests[0].body.task.passive`).
    pub path: String,
    /// Ours.
    pub ours: Option<Value>,
    /// 6.0.2's.
    pub theirs: Option<Value>,
}

impl Delta {
    /// The compared aspect the difference is in.
    pub fn aspect(&self) -> &str {
        let end = self.path.find(['.', '[']).unwrap_or(self.path.len());
        &self.path[..end]
    }

    /// True if the difference lies at or under `prefix` (`env[0]` covers `env[0].X`, not
    /// `env[0]X`).
    pub fn under(&self, prefix: &str) -> bool {
        self.path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".to_owned(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 400 {
                let cut: String = s.chars().take(400).collect();
                format!("{cut}…")
            } else {
                s
            }
        }
    }
}

fn diff_values(path: &str, ours: Option<&Value>, theirs: Option<&Value>, out: &mut Vec<Delta>) {
    match (ours, theirs) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_values(&p, a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                diff_values(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Delta {
            path: path.to_owned(),
            ours: a.cloned(),
            theirs: b.cloned(),
        }),
    }
}

/// The differences between two outcomes. Summary lines are compared when both wrappers
/// logged one (6.0.2 logs none when it is stopped by a signal or the server, ours does).
pub fn diff(ours: &Outcome, theirs: &Outcome) -> Vec<Delta> {
    let (mut a, mut b) = (ours.view(), theirs.view());
    if ours.summary.is_empty() || theirs.summary.is_empty() {
        for v in [&mut a, &mut b] {
            if let Some(m) = v.as_object_mut() {
                m.remove("summary");
            }
        }
    }
    let mut out = Vec::new();
    diff_values("", Some(&a), Some(&b), &mut out);
    out
}

/// How a scenario ended.
#[derive(Debug)]
pub enum Verdict {
    /// Both sides did the same.
    Agree,
    /// A declared difference, observed and checked.
    Declared {
        /// The README row or decision.
        reason: String,
        /// What differed.
        deltas: Vec<Delta>,
    },
    /// An unexpected difference or a failed check.
    Failed {
        /// Why, readable.
        report: String,
        /// The differences.
        deltas: Vec<Delta>,
    },
}

/// One scenario's result.
#[derive(Debug)]
pub struct Result {
    /// The scenario's name.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The fix that would make it agree, if noted.
    pub tracking: Option<String>,
    /// Wall-clock time of both sides.
    pub elapsed: Duration,
    /// Which rules applied.
    pub applied: Vec<bool>,
    /// Both outcomes, with `PROC_WRAPPER_DIFFERENTIAL_SHOW` set.
    pub shown: Option<String>,
}

fn render_deltas(deltas: &[Delta]) -> String {
    let mut s = String::new();
    for d in deltas {
        let _ = writeln!(
            s,
            "    {}\n      ours:  {}\n      6.0.2: {}",
            d.path,
            show(d.ours.as_ref()),
            show(d.theirs.as_ref())
        );
    }
    s
}

fn render_side(o: &Outcome) -> String {
    let tail: String = {
        let lines: Vec<&str> = o.stderr.lines().collect();
        let from = lines.len().saturating_sub(25);
        lines[from..].join("\n      ")
    };
    format!(
        "  {}: {}, requests [{}], runs {}\n    stderr (last lines):\n      {}\n",
        o.side.label(),
        o.exit(),
        o.request_line(),
        o.runs,
        tail
    )
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}

fn judge(s: &Scenario, ours: &Outcome, theirs: &Outcome) -> Verdict {
    let deltas = diff(ours, theirs);
    match &s.expect {
        Expect::Agree if deltas.is_empty() => Verdict::Agree,
        Expect::Agree => Verdict::Failed {
            report: format!(
                "differs unexpectedly:\n{}{}{}",
                render_deltas(&deltas),
                render_side(ours),
                render_side(theirs)
            ),
            deltas,
        },
        Expect::Differ {
            reason,
            paths,
            check,
        } => {
            let mut problems = String::new();
            if deltas.is_empty() {
                problems.push_str(
                    "  the declared difference is gone: both sides now agree (remove the \
                     declaration, or one side changed)\n",
                );
            }
            let stray: Vec<Delta> = deltas
                .iter()
                .filter(|d| !paths.iter().any(|p| d.under(p)))
                .cloned()
                .collect();
            if !stray.is_empty() {
                let _ = write!(
                    problems,
                    "  differs beyond the declared paths {paths:?}:\n{}",
                    render_deltas(&stray)
                );
            }
            if let Err(p) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(ours, theirs)))
            {
                let _ = writeln!(
                    problems,
                    "  the check of the declared difference failed: {}",
                    panic_text(p.as_ref())
                );
            }
            if problems.is_empty() {
                Verdict::Declared {
                    reason: reason.clone(),
                    deltas,
                }
            } else if !stray.is_empty() {
                Verdict::Failed {
                    report: format!(
                        "declared difference ({reason}) not as declared:\n{problems}  all \
                         differences:\n{}{}{}",
                        render_deltas(&deltas),
                        render_side(ours),
                        render_side(theirs)
                    ),
                    deltas: stray,
                }
            } else {
                Verdict::Failed {
                    report: format!(
                        "declared difference ({reason}) not as declared:\n{problems}  all \
                         differences:\n{}{}{}",
                        render_deltas(&deltas),
                        render_side(ours),
                        render_side(theirs)
                    ),
                    deltas,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running one side.

// The helpers name their folder and tools by absolute paths: a child may run with a partial
// environment (6.0.2 does when a secret fails to resolve).
const REC_SCRIPT: &str = r#"#!/bin/sh
# Records one run of the child: its PID, environment and arguments.
echo "$$" >> '{REC}/runs'
n=$(/usr/bin/wc -l < '{REC}/runs')
n=$((n + 0))
/usr/bin/env -0 > "{REC}/env.$n"
printf '%s\0' "$@" > "{REC}/args.$n"
"#;

const WAITREL_SCRIPT: &str = r#"#!/bin/sh
# Waits until the harness releases the child.
echo "$$" >> '{REC}/waiters'
while [ ! -e '{REC}/release' ]; do /usr/bin/sleep 0.02; done
"#;

/// Context of one side's run, for placeholders and normalisation.
struct Ctx {
    root: String,
    api: String,
    dead: String,
    port: u16,
    ecs: String,
    moto: String,
}

impl Ctx {
    fn expand(&self, s: &str) -> String {
        s.replace("{API}", &self.api)
            .replace("{DEAD}", &self.dead)
            .replace("{WORK}", &format!("{}/work", self.root))
            .replace("{REC}", &format!("{}/rec", self.root))
            .replace("{ROOT}", &self.root)
            .replace("{PORT}", &self.port.to_string())
            .replace("{ECS}", &self.ecs)
            .replace("{MOTO}", &self.moto)
    }

    /// Puts placeholders back for this side's folder and URLs.
    fn mask(&self, s: &str) -> String {
        let mut s = s.replace(&self.root, "{ROOT}").replace(&self.api, "{API}");
        if !self.dead.is_empty() {
            s = s.replace(&self.dead, "{DEAD}");
        }
        if !self.ecs.is_empty() {
            s = s.replace(&self.ecs, "{ECS}");
        }
        if !self.moto.is_empty() {
            s = s.replace(&self.moto, "{MOTO}");
        }
        s
    }
}

/// True for `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`, the UTC times sent to the API (as 6.0.2
/// writes them).
pub fn is_utc_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let base = b.len() >= 25
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !base {
        return false;
    }
    let rest = &s[19..];
    let rest = match rest.strip_prefix('.') {
        Some(r) if r.len() > 6 && r.as_bytes()[..6].iter().all(u8::is_ascii_digit) => &r[6..],
        Some(_) => return false,
        None => rest,
    };
    rest == "+00:00"
}

const TIME_KEYS: [&str; 3] = ["started_at", "finished_at", "last_app_heartbeat_at"];

fn normalise_body(ctx: &Ctx, key: Option<&str>, v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), normalise_body(ctx, Some(k), v));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| normalise_body(ctx, None, v)).collect()),
        Value::String(s) => {
            let key = key.unwrap_or("");
            if TIME_KEYS.contains(&key) && is_utc_time(s) {
                json!("<utc time>")
            } else {
                Value::String(ctx.mask(s))
            }
        }
        Value::Number(n) => match key {
            Some("pid") if n.as_u64().is_some_and(|p| p > 0) => json!("<pid>"),
            Some("status_update_port") if n.as_u64() == Some(u64::from(ctx.port)) => {
                json!("{PORT}")
            }
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

fn normalise_request(ctx: &Ctx, r: &Recorded) -> Value {
    json!({
        "method": r.method,
        "path": r.path,
        "query": r.query,
        "authorization": r.authorization,
        "content_type": r.content_type,
        "accept": r.accept,
        "body": normalise_body(ctx, None, &r.body),
    })
}

/// Variables that the child's shell sets itself, not the wrapper.
const SHELL_VARS: [&str; 4] = ["_", "SHLVL", "PWD", "OLDPWD"];

fn read_env(ctx: &Ctx, path: &Path) -> BTreeMap<String, String> {
    let raw = std::fs::read(path).unwrap_or_default();
    let mut env = BTreeMap::new();
    for entry in raw.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let (k, v) = entry.split_once('=').unwrap_or((&entry, ""));
        if SHELL_VARS.contains(&k) {
            continue;
        }
        let v = if !v.is_empty() && v == ctx.port.to_string() && k.contains("PORT") {
            "{PORT}".to_owned()
        } else {
            ctx.mask(v)
        };
        env.insert(k.to_owned(), v);
    }
    env
}

fn read_argv(path: &Path) -> Vec<String> {
    let raw = std::fs::read(path).unwrap_or_default();
    let mut args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // printf writes a NUL after each argument, and one empty string when there are none.
    if args.last().is_some_and(String::is_empty) {
        args.pop();
    }
    if args.len() == 1 && args[0].is_empty() {
        args.clear();
    }
    args
}

fn walk(dir: &Path, base: &Path, ctx: &Ctx, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p
            .strip_prefix(base)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        if p.is_dir() {
            out.insert(format!("{rel}/"), String::new());
            walk(&p, base, ctx, out);
        } else {
            let content = std::fs::read(&p).unwrap_or_default();
            out.insert(rel, ctx.mask(&String::from_utf8_lossy(&content)));
        }
    }
}

fn pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// `Task 'X' ACTION at TIME in N seconds on attempt A / M, for a total duration of T
/// second(s).` → `Task 'X' on attempt A / M`: the Task's name and the attempts, which both
/// wrappers log alike; the wording of the action and the times vary.
fn summary_of(line: &str) -> Option<String> {
    let start = line.find("Task '")?;
    let rest = &line[start + 6..];
    let name_end = rest.find("' ")?;
    let attempt = rest.find(" on attempt ")?;
    let tail = &rest[attempt..];
    let tail = tail
        .find(',')
        .map_or(tail.trim_end_matches('.'), |i| &tail[..i]);
    Some(format!("Task '{}'{tail}", &rest[..name_end]))
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The time of a `PROC_WRAPPER: YYYY-MM-DD HH:MM:SS,mmm ...` log line, read as if it were
/// UTC, in seconds since the epoch.
fn log_line_time(line: &str) -> Option<i64> {
    let t = line.strip_prefix("PROC_WRAPPER: ")?.get(..19)?;
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let days = days_from_civil(num(0..4)?, num(5..7)?, num(8..10)?);
    Some(days * 86_400 + num(11..13)? * 3_600 + num(14..16)? * 60 + num(17..19)?)
}

fn log_clock(stderr: &str, started: std::time::SystemTime) -> Option<i64> {
    let start = i64::try_from(
        started
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs(),
    )
    .ok()?;
    let t = stderr.lines().find_map(log_line_time)?;
    // Rounded to hours: the run takes far less than half an hour.
    Some((t - start + 1_800).div_euclid(3_600))
}

fn uses_placeholder(s: &Scenario, p: &str) -> bool {
    s.args.iter().any(|a| a.contains(p))
        || s.env.iter().any(|(_, v)| v.contains(p))
        || s.files.iter().any(|(_, c)| c.contains(p))
}

fn condition_holds(when: When, api: &FakeApi, rec: &Path, side: Side, stderr: &Output) -> bool {
    match when {
        When::Requests(n) => api.requests().len() >= n,
        When::Runs(n) => line_count(&rec.join("runs")) >= n,
        When::Waiting(n) => line_count(&rec.join("waiters")) >= n,
        When::Started => {
            let marker = match side {
                Side::Ours => "started process ",
                Side::Theirs => "pid=",
            };
            line_count(&rec.join("waiters")) >= 1 && stderr.text().contains(marker)
        }
    }
}

/// What a wrapper wrote to a pipe so far, read by a thread until the pipe ends.
struct Output {
    buf: std::sync::Arc<Mutex<Vec<u8>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Output {
    fn read(mut r: impl Read + Send + 'static) -> Self {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .extend_from_slice(&chunk[..n]),
                }
            }
        });
        Self { buf, thread }
    }

    fn text(&self) -> String {
        let buf = self
            .buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Everything, once the pipe has ended.
    fn finish(self) -> String {
        let Self { buf, thread } = self;
        let _ = thread.join();
        let buf = buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

fn status_parts(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    (status.code(), status.signal())
}

fn run_side(w: &Wrappers, s: &Scenario, side: Side, moto: &str) -> Outcome {
    let dir = tempfile::Builder::new()
        .prefix("pwdiff.")
        .tempdir()
        .expect("UNWRAP: a temporary folder");
    let root = dir.path().to_string_lossy().into_owned();
    for sub in ["work", "rec", "bin"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("UNWRAP: folders");
    }
    let api = FakeApi::start();
    let ecs =
        uses_placeholder(s, "{ECS}").then(|| crate::fake_ecs::FakeEcs::start("container.json"));
    let uses = |p: &str| uses_placeholder(s, p);
    let ctx = Ctx {
        root: root.clone(),
        api: api.url.clone(),
        dead: if uses("{DEAD}") {
            refused_url()
        } else {
            String::new()
        },
        port: if uses("{PORT}") || s.steps.iter().any(|st| matches!(st.action, Action::Udp(_))) {
            free_udp_port()
        } else {
            0
        },
        ecs: ecs.as_ref().map(|e| e.uri.clone()).unwrap_or_default(),
        moto: moto.to_owned(),
    };
    for (name, script) in [("rec", REC_SCRIPT), ("waitrel", WAITREL_SCRIPT)] {
        let p = dir.path().join("bin").join(name);
        std::fs::write(&p, ctx.expand(script)).expect("UNWRAP: helper scripts");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .expect("UNWRAP: helper scripts are executable");
    }
    for (path, content) in &s.files {
        let p = dir.path().join(ctx.expand(path));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("UNWRAP: folders for files");
        }
        std::fs::write(&p, ctx.expand(content)).expect("UNWRAP: scenario files");
    }
    api.push_faults(s.faults.iter().cloned());
    let rec = dir.path().join("rec");
    let work = dir.path().join("work");

    let mut cmd = match side {
        Side::Ours => Command::new(&w.ours),
        Side::Theirs => {
            let mut c = Command::new(&w.python);
            c.args(["-m", "proc_wrapper"]);
            c
        }
    };
    let path = format!(
        "{root}/bin:{}",
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned())
    );
    // LC_CTYPE: Python 3 (PEP 538) would otherwise coerce the C locale by adding it to the
    // environment of 6.0.2's children only.
    cmd.env_clear()
        .env("PATH", path)
        .env("LC_CTYPE", "C.UTF-8")
        .env("REC", rec.as_os_str())
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &s.env {
        cmd.env(k, ctx.expand(v));
    }
    for a in &s.args {
        cmd.arg(ctx.expand(a));
    }
    // Both wrappers start with the default signal actions, however the tests were started:
    // a shell runs a background job with SIGINT and SIGQUIT ignored, `nohup` ignores
    // SIGHUP, and an ignored signal stays ignored across exec (Python then installs no
    // handler of its own, so 6.0.2 would sit out the signal scenarios).
    reset_signals(&mut cmd);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{} cannot start: {e}", side.label()));
    let out = Output::read(child.stdout.take().expect("UNWRAP: piped"));
    let err = Output::read(child.stderr.take().expect("UNWRAP: piped"));
    let started = Instant::now();
    let started_clock = std::time::SystemTime::now();
    let mut reached = vec![false; s.steps.len()];
    let mut next = 0;
    let mut hung = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("UNWRAP: waiting works") {
            break status;
        }
        while next < s.steps.len() && condition_holds(s.steps[next].when, &api, &rec, side, &err) {
            match &s.steps[next].action {
                Action::Faults(f) => api.push_faults(f.iter().cloned()),
                Action::StopExecution(n) => api.request_stop(&crate::fake_api::execution_uuid(*n)),
                Action::Release => {
                    std::fs::write(rec.join("release"), "").expect("UNWRAP: release file");
                }
                Action::Signal(sig) => crate::signal_child(&child, *sig),
                Action::Udp(msg) => {
                    let sock = std::net::UdpSocket::bind("127.0.0.1:0")
                        .expect("UNWRAP: loopback UDP can be bound");
                    sock.send_to(ctx.expand(msg).as_bytes(), ("127.0.0.1", ctx.port))
                        .expect("UNWRAP: a datagram can be sent");
                }
            }
            reached[next] = true;
            next += 1;
        }
        if started.elapsed() > s.limit {
            hung = true;
            let _ = child.kill();
            break child.wait().expect("UNWRAP: waiting works");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (code, signal) = status_parts(status);
    // Children still waiting after the wrapper exited (those it stopped get a second to
    // finish dying: a grandchild may outlive the wrapper's wait for the child by a moment),
    // then release and end them.
    let waiters = pids(&rec.join("waiters"));
    crate::wait_until(Duration::from_secs(1), || {
        waiters.iter().all(|p| crate::process_gone(*p))
    });
    let alive = waiters.iter().filter(|p| !crate::process_gone(**p)).count();
    let _ = std::fs::write(rec.join("release"), "");
    let gone = crate::wait_until(Duration::from_secs(5), || {
        waiters.iter().all(|p| crate::process_gone(*p))
    });
    if !gone {
        for p in &waiters {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), Signal::SIGKILL);
        }
    }
    // Whatever still holds the wrapper's output open (grandchildren) has 5 s to finish.
    let orphans = !crate::wait_until(Duration::from_secs(5), || {
        out.is_finished() && err.is_finished()
    });
    if orphans {
        // Nothing of the run may outlive it: end the stragglers by the output they hold.
        kill_holders(&root);
    }
    let stdout = out.finish();
    let stderr = err.finish();

    let raw_requests = api.requests();
    let requests = raw_requests
        .iter()
        .map(|r| normalise_request(&ctx, r))
        .collect();
    let runs = line_count(&rec.join("runs"));
    let env = (1..=runs)
        .map(|n| read_env(&ctx, &rec.join(format!("env.{n}"))))
        .collect();
    let argv = (1..=runs)
        .map(|n| read_argv(&rec.join(format!("args.{n}"))))
        .collect();
    let mut files = BTreeMap::new();
    walk(&work, &work, &ctx, &mut files);
    let summary = stderr
        .lines()
        .filter_map(summary_of)
        .map(|l| ctx.mask(&l))
        .collect();
    let log_clock = log_clock(&stderr, started_clock);
    Outcome {
        side,
        code,
        signal,
        hung,
        raw_requests,
        requests,
        runs,
        argv,
        env,
        files,
        alive,
        orphans,
        stdout: ctx.mask(&stdout),
        stderr,
        summary,
        log_clock,
        steps: reached,
    }
}

/// Ends processes whose command line or working folder is under `root`.
fn kill_holders(root: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cwd.starts_with(root) || String::from_utf8_lossy(&cmdline).contains(root) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Runs one scenario on both sides (at the same time), applies the rules and judges it.
pub fn run_scenario(w: &Wrappers, s: &Scenario, rules: &[Rule], moto: &str) -> Result {
    let start = Instant::now();
    let (mut ours, mut theirs) = std::thread::scope(|scope| {
        let t = scope.spawn(|| run_side(w, s, Side::Theirs, moto));
        let o = run_side(w, s, Side::Ours, moto);
        (o, t.join().expect("UNWRAP: the 6.0.2 side does not panic"))
    });
    let applied = rules
        .iter()
        .map(|r| (r.apply)(&mut ours, &mut theirs))
        .collect();
    let shown = std::env::var_os("PROC_WRAPPER_DIFFERENTIAL_SHOW").map(|_| {
        format!(
            "  ours:\n{}\n  6.0.2:\n{}\n",
            serde_json::to_string_pretty(&ours.view()).unwrap_or_default(),
            serde_json::to_string_pretty(&theirs.view()).unwrap_or_default()
        )
    });
    Result {
        name: s.name.clone(),
        verdict: judge(s, &ours, &theirs),
        tracking: s.tracking.clone(),
        elapsed: start.elapsed(),
        applied,
        shown,
    }
}

/// A set of scenarios to compare, and how.
pub struct Suite<'a> {
    /// Names the suite in the summary.
    pub title: &'a str,
    /// The programs compared.
    pub wrappers: &'a Wrappers,
    /// Differences declared for all scenarios.
    pub rules: Vec<Rule>,
    /// Fixes in flight, to mark the failures they explain.
    pub pending: Vec<Pending>,
    /// Scenarios run at the same time (each runs both wrappers at once).
    pub parallel: usize,
    /// The moto_server URL for `{MOTO}` (empty if none).
    pub moto: &'a str,
    /// Where the summary is written.
    pub summary_file: PathBuf,
}

impl Suite<'_> {
    /// Runs every scenario (those whose name contains `PROC_WRAPPER_DIFFERENTIAL_FILTER`, if
    /// set), writes the summary to stderr (past the test harness's capture) and to the
    /// summary file, and panics if any scenario failed.
    pub fn run(&self, scenarios: &[Scenario]) {
        run_all(self, scenarios);
    }
}

fn run_all(suite: &Suite<'_>, scenarios: &[Scenario]) {
    let Suite {
        title,
        wrappers: w,
        rules,
        pending,
        parallel,
        moto,
        summary_file,
    } = suite;
    let mut names = BTreeSet::new();
    for s in scenarios {
        assert!(names.insert(&s.name), "two scenarios are named {}", s.name);
    }
    let filter = std::env::var("PROC_WRAPPER_DIFFERENTIAL_FILTER").ok();
    let chosen: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| filter.as_deref().is_none_or(|f| s.name.contains(f)))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Result>> = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..(*parallel).max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(s) = chosen.get(i) else { break };
                    let r = run_scenario(w, s, rules, moto);
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(r);
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let order: BTreeMap<&str, usize> = chosen
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    results.sort_by_key(|r| order.get(r.name.as_str()).copied().unwrap_or(usize::MAX));
    let report = summary(
        title,
        &results,
        rules,
        pending,
        start.elapsed(),
        filter.as_deref(),
    );
    let _ = std::io::stderr().lock().write_all(report.as_bytes());
    if let Some(parent) = summary_file.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(summary_file, &report);
    let failed = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Failed { .. }))
        .count();
    assert!(
        failed == 0,
        "{failed} of {} scenarios failed; their differences are in the summary above and in {}",
        results.len(),
        summary_file.display()
    );
}

/// The paths of some differences, for one line.
fn paths_of(deltas: &[Delta]) -> String {
    let mut paths: Vec<&str> = deltas.iter().map(|d| d.path.as_str()).take(6).collect();
    if deltas.len() > paths.len() {
        paths.push("…");
    }
    paths.join(", ")
}

fn summary(
    title: &str,
    results: &[Result],
    rules: &[Rule],
    pending: &[Pending],
    elapsed: Duration,
    filter: Option<&str>,
) -> String {
    let agree = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Agree))
        .count();
    let declared: Vec<&Result> = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Declared { .. }))
        .collect();
    let failed: Vec<&Result> = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Failed { .. }))
        .collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n=== differential ({title}): proc_wrapper vs Python proc_wrapper {ORIGINAL_VERSION} ==="
    );
    if let Some(f) = filter {
        let _ = writeln!(s, "(only scenarios whose name contains {f:?})");
    }
    let _ = writeln!(
        s,
        "{} scenarios compared in {:.1} s: {agree} agree, {} differ as declared, {} fail",
        results.len(),
        elapsed.as_secs_f64(),
        declared.len(),
        failed.len()
    );
    let _ = writeln!(
        s,
        "\nDifferences declared for all scenarios (scenarios where seen):"
    );
    for (i, rule) in rules.iter().enumerate() {
        let n = results
            .iter()
            .filter(|r| r.applied.get(i) == Some(&true))
            .count();
        let _ = writeln!(s, "  {n:3}  {}", rule.reason);
    }
    if !declared.is_empty() {
        let _ = writeln!(s, "\nDifferences declared by scenarios:");
        for r in &declared {
            if let Verdict::Declared { reason, deltas } = &r.verdict {
                let _ = writeln!(
                    s,
                    "  {}: {reason}\n      differs in: {}",
                    r.name,
                    paths_of(deltas)
                );
            }
        }
    }
    let settled: Vec<&str> = results
        .iter()
        .filter(|r| r.tracking.is_some() && !matches!(r.verdict, Verdict::Failed { .. }))
        .map(|r| r.name.as_str())
        .collect();
    if !settled.is_empty() {
        let _ = writeln!(
            s,
            "\nNoted as awaiting a fix but passing now (drop the note): {}",
            settled.join(", ")
        );
    }
    for r in results {
        if let Some(shown) = &r.shown {
            let _ = write!(s, "\n--- outcomes of {}\n{shown}", r.name);
        }
    }
    if !failed.is_empty() {
        let _ = writeln!(s, "\nFailures:");
        for r in &failed {
            if let Verdict::Failed { report, .. } = &r.verdict {
                let _ = writeln!(s, "\n--- {} ({:.1} s)", r.name, r.elapsed.as_secs_f64());
                if let Some(t) = &r.tracking {
                    let _ = writeln!(s, "  (agrees once this is fixed: {t})");
                }
                s.push_str(report);
            }
        }
        let _ = writeln!(s, "\nFailed scenarios, and where they differ:");
        let mut unexplained = Vec::new();
        for r in &failed {
            let Verdict::Failed { deltas, .. } = &r.verdict else {
                continue;
            };
            let _ = writeln!(s, "  {}: {}", r.name, paths_of(deltas));
            if let Some(t) = &r.tracking {
                let _ = writeln!(s, "      the scenario awaits a fix in flight: {t}");
            }
            let fixes: BTreeSet<&str> = deltas
                .iter()
                .filter_map(|d| pending.iter().find(|p| (p.covers)(d)))
                .map(|p| p.note.as_str())
                .collect();
            let all =
                !deltas.is_empty() && deltas.iter().all(|d| pending.iter().any(|p| (p.covers)(d)));
            if !fixes.is_empty() {
                let how = if all {
                    "all of it explained"
                } else {
                    "partly explained"
                };
                let fixes = fixes.into_iter().collect::<Vec<_>>().join("; ");
                let _ = writeln!(s, "      {how} by fixes in flight: {fixes}");
            }
            if !all && r.tracking.is_none() {
                unexplained.push(r.name.as_str());
            }
        }
        if unexplained.is_empty() {
            let _ = writeln!(
                s,
                "\nAll {} failures await fixes in flight (by the paths those fixes change, or \
                 the scenario's note).",
                failed.len()
            );
        } else {
            let _ = writeln!(
                s,
                "\nNot explained by fixes in flight: {}",
                unexplained.join(", ")
            );
        }
    }
    s
}

/// Makes `cmd` start with the default action for the signals the scenarios send.
fn reset_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: between fork and exec the closure only calls sigaction (async-signal-safe)
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [
                Signal::SIGINT,
                Signal::SIGQUIT,
                Signal::SIGHUP,
                Signal::SIGTERM,
                Signal::SIGUSR1,
                Signal::SIGUSR2,
            ] {
                nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl)
                    .map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert!(is_utc_time("2026-11-27T16:59:19.144705+00:00"));
        assert!(is_utc_time("2026-11-27T16:59:19+00:00"));
        assert!(!is_utc_time("2026-11-27T16:59:19.1447+00:00"));
        assert!(!is_utc_time("2026-11-27T16:59:19.144705Z"));
        assert!(!is_utc_time("2026-11-27 16:59:19.144705+00:00"));
        assert!(!is_utc_time("2026-11-27T16:59:19.144705-05:00"));
    }

    #[test]
    fn summary_lines() {
        let py = "PROC_WRAPPER: 2026-12-01 07:40:00,917 INFO: Task '[Unnamed]' succeeded at \
                  2026-12-01 07:40:00+00:00 in 0 seconds on attempt 1 / 1, for a total \
                  duration of 0 second(s).";
        let ours = "PROC_WRAPPER: 2026-12-01 07:40:00,968 INFO: Task '[Unnamed]' succeeded at \
                    2026-12-01 07:40:00+00:00 in 0.007 seconds on attempt 1 / 1, for a total \
                    duration of 0.007 second(s).";
        assert_eq!(
            summary_of(py).as_deref(),
            Some("Task '[Unnamed]' on attempt 1 / 1")
        );
        assert_eq!(summary_of(py), summary_of(ours));
        assert_eq!(summary_of("no summary here"), None);
    }

    #[test]
    fn log_clocks() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let t = log_line_time("PROC_WRAPPER: 2026-12-01 07:40:00,917 INFO: x").unwrap();
        let start = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap());
        assert_eq!(
            log_clock("PROC_WRAPPER: 2026-12-01 07:40:00,917 INFO: x", start),
            Some(0)
        );
        assert_eq!(
            log_clock("PROC_WRAPPER: 2026-12-01 02:40:01,917 INFO: x", start),
            Some(-5)
        );
        assert_eq!(log_clock("no log", start), None);
    }

    #[test]
    fn deltas_name_their_aspect() {
        let mut out = Vec::new();
        diff_values(
            "",
            Some(&json!({"requests": [{"body": {"a": 1}}], "runs": 1})),
            Some(&json!({"requests": [{"body": {"a": 2}}, {}], "runs": 1})),
            &mut out,
        );
        let paths: Vec<&str> = out.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["requests[0].body.a", "requests[1]"]);
        assert!(out.iter().all(|d| d.aspect() == "requests"));
    }
}
