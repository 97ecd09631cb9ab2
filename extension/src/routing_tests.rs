//! The main loop's routing, in process: sequences of inbound events (INVOKE, telemetry
//! records for the current invocation and for others, records that arrive before their
//! INVOKE, init records, status messages, SHUTDOWN, telemetry that never comes) and which
//! invocation each event reaches, and how invocations are closed.
//!
//! Invocations are opened with [`State::open`], which hands back the task that would report
//! the invocation instead of spawning it, so the test reads the task's event channel itself.
//! The waits (`wait_for_invocation`, `shutdown`) run with paused time: they have no I/O, so
//! the clock only moves to their own timers.

use std::collections::HashMap;
use std::time::Duration;

use proc_wrapper::handoff::HandOff;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, error::TryRecvError};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::*;

fn state() -> State {
    // Reporting is off: an invocation that is spawned (`State::start`) ends at once.
    state_with(ReportingState::Off)
}

/// A state whose reporting stays `reporting` (its sender is gone: a spawned invocation
/// ends at once in any case).
fn state_with(reporting: ReportingState) -> State {
    let (_tx, reporting) = watch::channel(reporting);
    State {
        unreported: 0,
        settings: Settings::default(),
        reporting,
        invocations: HashMap::new(),
        tasks: JoinSet::new(),
        current: None,
        early: HashMap::new(),
        invoked: 0,
        telemetry: Telemetry::Awaited,
        init_failure: None,
        init_known: false,
        proxied: false,
    }
}

fn invoke(id: &str) -> Invoke {
    Invoke {
        request_id: id.to_owned(),
        ..Invoke::default()
    }
}

fn runtime_done(id: &str, status: &str) -> Inbound {
    Inbound::Telemetry(Record::RuntimeDone {
        request_id: id.to_owned(),
        at: None,
        status: status.to_owned(),
        duration_ms: Some(12.5),
        error_type: None,
    })
}

fn report(id: &str) -> Inbound {
    let mut metrics = Map::new();
    metrics.insert("billed_duration_ms".into(), json!(13));
    Inbound::Telemetry(Record::Report {
        request_id: id.to_owned(),
        metrics,
    })
}

fn platform_start() -> Inbound {
    Inbound::Telemetry(Record::Other("platform.start".to_owned()))
}

/// `platform.initRuntimeDone` with `status` in `phase`.
fn init_done(status: &str, phase: &str) -> Inbound {
    Inbound::Telemetry(Record::InitRuntimeDone(InitEnd {
        status: Some(status.to_owned()),
        error_type: (status != "success").then(|| "Runtime.ExitError".to_owned()),
        phase: Some(phase.to_owned()),
    }))
}

/// A status message from the function, for `id` (`None`: the current invocation).
fn status(id: Option<&str>, count: i64) -> Inbound {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert(
            proc_wrapper::handoff::REQUEST_ID.into(),
            Value::String(id.to_owned()),
        );
    }
    m.insert("success_count".into(), json!(count));
    Inbound::Status(HandOff::parse(m))
}

/// The events queued for an invocation so far, as short names.
fn drain(rx: &mut UnboundedReceiver<Event>) -> Vec<String> {
    let mut names = Vec::new();
    while let Ok(e) = rx.try_recv() {
        names.push(match e {
            Event::Done { status, .. } => format!("done:{status}"),
            Event::Report(_) => "report".to_owned(),
            Event::Init(end) => format!(
                "init:{}:{}",
                end.status.unwrap_or_default(),
                end.phase.unwrap_or_default()
            ),
            Event::TelemetryArrives => "telemetry-arrives".to_owned(),
            Event::HandOff(h) => format!("status:{}", h.fields["success_count"]),
            Event::Close(Close::Shutdown(reason)) => format!("close:shutdown:{reason}"),
            Event::Close(Close::NoTelemetry) => "close:no-telemetry".to_owned(),
            Event::Input { uuid, .. } => format!("input:{}", uuid.unwrap_or_default()),
            Event::Posted => "posted".to_owned(),
            Event::Answered(crate::invocation::Answer::Response) => "answered:response".to_owned(),
            Event::Answered(crate::invocation::Answer::Error { error_type, .. }) => {
                format!("answered:error:{}", error_type.unwrap_or_default())
            }
        });
    }
    names
}

/// An invocation opened by the test: its task, not running, and the task's event channel.
struct Opened {
    events: UnboundedReceiver<Event>,
    /// Fires when the task says its final update is done (`task.finished`).
    finished: oneshot::Receiver<()>,
    task: Invocation,
}

/// Opens `id` as the invocation in progress.
fn open(state: &mut State, id: &str) -> Opened {
    let (finished, task) = state.open(invoke(id), None);
    let mut task = task.expect("UNWRAP: room for another report");
    let (_, placeholder) = tokio::sync::mpsc::unbounded_channel();
    let events = std::mem::replace(&mut task.events, placeholder);
    Opened {
        events,
        finished,
        task,
    }
}

/// What `wait_for_invocation` does when it returns: the invocation is no longer current.
fn end_current(state: &mut State) {
    state.current = None;
}

#[test]
fn records_reach_the_invocation_they_name() {
    let mut s = state();
    let mut a = open(&mut s, "A");
    s.route(platform_start());
    s.route(status(None, 1));
    s.route(runtime_done("A", "success"));
    assert_eq!(s.telemetry, Telemetry::Arriving);
    let current = s.current.as_ref().expect("UNWRAP: A is current");
    assert!(current.telemetry_seen);
    assert!(current.done_at.is_some(), "A's runtimeDone marks it done");
    end_current(&mut s);

    // B runs while A's report is still on its way.
    let mut b = open(&mut s, "B");
    assert!(s.current.as_ref().is_some_and(|c| !c.telemetry_seen));
    s.route(report("A"));
    s.route(status(None, 2));
    s.route(status(Some("A"), 3));
    s.route(runtime_done("B", "error"));
    s.route(report("B"));

    assert_eq!(
        drain(&mut a.events),
        [
            "telemetry-arrives",
            "status:1",
            "done:success",
            "report",
            "status:3"
        ]
    );
    assert!(!a.task.telemetry_arrives && b.task.telemetry_arrives);
    assert_eq!(drain(&mut b.events), ["status:2", "done:error", "report"]);
    assert!(s.early.is_empty());
}

#[test]
fn a_runtime_done_of_another_invocation_does_not_end_the_current_one() {
    let mut s = state();
    let mut a = open(&mut s, "A");
    end_current(&mut s);
    let mut b = open(&mut s, "B");
    s.route(runtime_done("A", "success"));
    assert_eq!(s.current.as_ref().and_then(|c| c.done_at), None);
    // The first record tells both that telemetry arrives; only A gets its runtimeDone.
    assert_eq!(drain(&mut a.events), ["telemetry-arrives", "done:success"]);
    assert_eq!(drain(&mut b.events), ["telemetry-arrives"]);
}

#[test]
fn records_that_arrive_before_their_invoke_are_kept_until_it() {
    let mut s = state();
    // Before A's INVOKE, a record of an invocation that is not A: one that is over.
    s.route(runtime_done("old", "timeout"));
    let mut a = open(&mut s, "A");
    assert!(
        s.early.is_empty(),
        "A's INVOKE drops what belongs to others"
    );
    // While A runs, Lambda already sends records of C, whose INVOKE is next.
    s.route(status(Some("C"), 1));
    s.route(report("C"));
    s.route(runtime_done("A", "success"));
    assert_eq!(s.early.get("C").map(Vec::len), Some(2));
    end_current(&mut s);

    let mut c = open(&mut s, "C");
    assert_eq!(drain(&mut c.events), ["status:1", "report"]);
    assert_eq!(drain(&mut a.events), ["done:success"]);
    assert!(s.early.is_empty());
}

#[test]
fn early_records_are_bounded() {
    let mut s = state();
    for _ in 0..10 {
        s.route(report("X"));
    }
    for i in 0..70 {
        s.route(report(&format!("other-{i}")));
    }
    assert_eq!(s.early.get("X").map(Vec::len), Some(8));
    assert_eq!(s.early.len(), 64);
    let mut x = open(&mut s, "X");
    assert_eq!(drain(&mut x.events).len(), 8);
}

#[test]
fn records_of_an_ended_invocation_reach_no_other() {
    let mut s = state();
    let mut a = open(&mut s, "A");
    end_current(&mut s);
    s.ended(Ok("A".to_owned()));
    assert!(!s.invocations.contains_key("A"));
    let mut b = open(&mut s, "B");
    s.route(report("A"));
    end_current(&mut s);
    let mut c = open(&mut s, "C");
    assert!(s.early.is_empty(), "the next INVOKE drops them");
    assert_eq!(a.events.try_recv().err(), Some(TryRecvError::Disconnected));
    assert_eq!(
        drain(&mut b.events),
        ["telemetry-arrives"],
        "A's report is not B's"
    );
    assert!(drain(&mut c.events).is_empty());
}

#[test]
fn an_invocation_whose_task_is_gone_is_forgotten_at_the_next_delivery() {
    let mut s = state();
    // Its task panicked: its receiver is gone (and `ended` got an error, not the id).
    drop(open(&mut s, "A"));
    assert!(s.invocations.contains_key("A"));
    s.route(report("A"));
    assert!(!s.invocations.contains_key("A"));
    assert!(
        s.early.is_empty(),
        "the current invocation's records are not kept"
    );
}

#[test]
fn status_messages_outside_an_invocation_are_dropped() {
    let mut s = state();
    s.route(status(None, 1));
    assert!(s.early.is_empty());
    let mut a = open(&mut s, "A");
    assert!(drain(&mut a.events).is_empty());
}

#[test]
fn close_all_closes_every_open_invocation() {
    let mut s = state();
    let mut a = open(&mut s, "A");
    end_current(&mut s);
    let mut b = open(&mut s, "B");
    s.close_all(&Close::Shutdown("timeout".to_owned()));
    assert!(s.invocations.is_empty());
    assert_eq!(drain(&mut a.events), ["close:shutdown:timeout"]);
    assert_eq!(drain(&mut b.events), ["close:shutdown:timeout"]);
    // Nothing reaches them afterwards.
    s.route(report("A"));
    assert_eq!(a.events.try_recv().err(), Some(TryRecvError::Disconnected));
}

#[tokio::test(start_paused = true)]
async fn shutdown_routes_what_is_waiting_then_closes_with_the_reason() {
    let mut s = state();
    let mut a = open(&mut s, "A");
    end_current(&mut s);
    let mut b = open(&mut s, "B");
    let (tx, mut inbox) = unbounded_channel();
    tx.send(report("A")).expect("UNWRAP: the inbox is open");
    tx.send(runtime_done("B", "success"))
        .expect("UNWRAP: the inbox is open");

    shutdown(&mut s, &mut inbox, "failure", 0).await;

    assert_eq!(
        drain(&mut a.events),
        ["telemetry-arrives", "report", "close:shutdown:failure"]
    );
    assert_eq!(
        drain(&mut b.events),
        [
            "telemetry-arrives",
            "done:success",
            "close:shutdown:failure"
        ]
    );
    assert!(s.invocations.is_empty());
}

#[tokio::test(start_paused = true)]
async fn telemetry_that_never_comes_closes_the_invocation_and_later_ones() {
    let mut s = state();
    let mut a = open(&mut s, "A");
    let (_tx, mut inbox) = unbounded_channel();
    let t0 = Instant::now();

    wait_for_invocation(&mut s, &mut inbox, a.finished, None, "A").await;

    // The watchdog waited `telemetry_wait`, then gave up on telemetry.
    assert_eq!(Instant::now() - t0, s.settings.telemetry_wait);
    assert_eq!(s.telemetry, Telemetry::Missing);
    assert_eq!(drain(&mut a.events), ["close:no-telemetry"]);
    assert!(s.current.is_none());

    // From now on, every invocation is closed at once.
    let mut b = open(&mut s, "B");
    assert_eq!(drain(&mut b.events), ["close:no-telemetry"]);
}

/// Lambda sends an invocation's telemetry as its INVOKE goes out: with a fast function,
/// its `runtimeDone` can reach the main loop first. That is telemetry seen, not missing,
/// and the wait ends `max_added` after it, as for one that came after the INVOKE.
#[tokio::test(start_paused = true)]
async fn telemetry_that_comes_before_its_invoke_is_telemetry_seen_and_its_end() {
    let mut s = state();
    s.route(platform_start());
    s.route(runtime_done("A", "success"));
    let mut a = open(&mut s, "A");
    assert!(
        s.current
            .as_ref()
            .is_some_and(|c| c.telemetry_seen && c.done_at.is_some())
    );
    let (_tx, mut inbox) = unbounded_channel();
    let t0 = Instant::now();

    // The task is not running: its final update never comes, so the cap ends the wait.
    wait_for_invocation(&mut s, &mut inbox, a.finished, None, "A").await;

    assert_eq!(Instant::now() - t0, s.settings.max_added);
    assert_eq!(s.telemetry, Telemetry::Arriving);
    assert_eq!(drain(&mut a.events), ["done:success"]);
    // Not given up on: the next invocation is not closed for want of telemetry.
    let mut b = open(&mut s, "B");
    assert!(drain(&mut b.events).is_empty());
}

#[tokio::test(start_paused = true)]
async fn with_telemetry_the_wait_ends_max_added_after_runtime_done() {
    let mut s = state();
    // The task is not running: its final update never comes, so the cap ends the wait.
    let mut a = open(&mut s, "A");
    let (tx, mut inbox) = unbounded_channel();
    tx.send(platform_start())
        .expect("UNWRAP: the inbox is open");
    tx.send(runtime_done("A", "success"))
        .expect("UNWRAP: the inbox is open");
    let t0 = Instant::now();

    wait_for_invocation(&mut s, &mut inbox, a.finished, None, "A").await;

    assert_eq!(Instant::now() - t0, s.settings.max_added);
    assert_eq!(s.telemetry, Telemetry::Arriving);
    assert_eq!(drain(&mut a.events), ["telemetry-arrives", "done:success"]);
    assert!(s.current.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_wait_ends_when_the_final_update_is_done() {
    let mut s = state();
    let Opened {
        mut events,
        finished,
        mut task,
    } = open(&mut s, "A");
    let (tx, mut inbox) = unbounded_channel();
    tx.send(runtime_done("A", "success"))
        .expect("UNWRAP: the inbox is open");
    let t0 = Instant::now();
    // The invocation's task, reduced to: on runtimeDone, the final update takes 40 ms.
    let reporter = async {
        while let Some(e) = events.recv().await {
            if matches!(e, Event::Done { .. }) {
                tokio::time::sleep(Duration::from_millis(40)).await;
                if let Some(f) = task.finished.take() {
                    let _ = f.send(());
                }
            }
        }
    };

    tokio::select! {
        () = wait_for_invocation(&mut s, &mut inbox, finished, None, "A") => {}
        () = reporter => unreachable!("the main loop keeps the invocation's channel open"),
    }

    assert_eq!(Instant::now() - t0, Duration::from_millis(40));
    assert!(s.current.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_started_invocation_is_forgotten_when_its_task_ends() {
    let mut s = state();
    let finished = s.start(invoke("A"), None);
    assert!(s.invocations.contains_key("A"));
    // Reporting is off: the task ends at once, without waiting for telemetry.
    finished
        .await
        .expect("UNWRAP: the task reports that it finished");
    let done = s.tasks.join_next().await.expect("UNWRAP: one task");
    s.ended(done);
    assert!(s.invocations.is_empty());
    assert!(s.tasks.is_empty());
}

#[test]
fn only_the_first_invocation_is_a_cold_start() {
    let mut s = state();
    let a = open(&mut s, "A");
    end_current(&mut s);
    let b = open(&mut s, "B");
    assert!(a.task.cold_start);
    assert!(!b.task.cold_start);
}

#[tokio::test(start_paused = true)]
async fn beyond_the_in_flight_limit_an_invocation_is_not_reported() {
    let mut s = state();
    for _ in 0..MAX_IN_FLIGHT {
        s.tasks.spawn(std::future::pending::<String>());
    }
    let (finished, task) = s.open(invoke("Z"), None);
    assert!(task.is_none());
    assert_eq!(s.unreported, 1);
    assert_eq!(s.current.as_ref().map(|c| c.request_id.as_str()), Some("Z"));
    finished
        .await
        .expect("UNWRAP: an unreported invocation is finished at once");
    // Its records go nowhere, and are not kept either.
    s.route(runtime_done("Z", "success"));
    assert!(s.invocations.is_empty());
    assert!(s.early.is_empty());
}

#[test]
fn only_platform_records_show_that_telemetry_arrives() {
    let mut s = state();
    let mut a = open(&mut s, "A");
    // The Runtime Interface Emulator posts the function's output as `function` records,
    // though the extension subscribed to platform records only.
    s.route(Inbound::Telemetry(Record::Other("function".to_owned())));
    assert_eq!(s.telemetry, Telemetry::Awaited);
    assert!(s.current.as_ref().is_some_and(|c| !c.telemetry_seen));
    assert!(drain(&mut a.events).is_empty());
    s.route(platform_start());
    assert_eq!(s.telemetry, Telemetry::Arriving);
    assert!(s.current.as_ref().is_some_and(|c| c.telemetry_seen));
    assert_eq!(drain(&mut a.events), ["telemetry-arrives"]);
    // Said once: later records do not repeat it.
    s.route(platform_start());
    assert!(drain(&mut a.events).is_empty());
}

#[test]
fn nothing_is_reported_with_reporting_off_or_telemetry_missing() {
    let mut s = state_with(ReportingState::Resolving);
    assert!(s.reports(), "the settings may still turn reporting on");
    s.telemetry = Telemetry::Missing;
    assert!(!s.reports());
    let mut s = state();
    assert!(!s.reports(), "reporting is off");
    s.telemetry = Telemetry::Arriving;
    assert!(!s.reports());
}

#[test]
fn an_init_failure_waits_for_the_next_invocation_and_a_later_success_clears_it() {
    let mut s = state();
    s.route(init_done("error", "init"));
    assert!(s.init_known);
    assert_eq!(
        s.init_failure
            .as_ref()
            .and_then(|f| f.error_type.as_deref()),
        Some("Runtime.ExitError")
    );
    let mut a = open(&mut s, "A");
    assert!(s.init_failure.is_none(), "A took it");
    assert!(a.task.telemetry_arrives, "the init record arrived before A");
    assert_eq!(drain(&mut a.events), ["init:error:init"]);
    // It does not decide A's outcome: Lambda initialises again within A.
    assert_eq!(s.current.as_ref().and_then(|c| c.done_at), None);
    // Its second init, within the invocation, reaches A too.
    s.route(init_done("success", "invoke"));
    assert_eq!(drain(&mut a.events), ["init:success:invoke"]);
    end_current(&mut s);

    // A failure followed by a success before any invocation is forgotten.
    let mut s = state();
    s.route(init_done("error", "init"));
    s.route(init_done("success", "invoke"));
    assert!(s.init_failure.is_none());
    let mut b = open(&mut s, "B");
    assert!(drain(&mut b.events).is_empty());
}

#[test]
fn an_init_failure_of_the_invoke_phase_ends_the_invocation_in_progress() {
    let mut s = state();
    let mut a = open(&mut s, "A");
    s.route(init_done("failure", "invoke"));
    assert!(
        s.current.as_ref().and_then(|c| c.done_at).is_some(),
        "the wait is capped from now on, as after runtimeDone"
    );
    assert!(s.init_failure.is_none(), "A has it");
    assert_eq!(
        drain(&mut a.events),
        ["telemetry-arrives", "init:failure:invoke"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_init_that_no_invocation_took_is_reported_at_shutdown() {
    let mut s = state_with(ReportingState::Resolving);
    let (tx, mut inbox) = unbounded_channel();
    tx.send(init_done("error", "init"))
        .expect("UNWRAP: the inbox is open");
    shutdown(&mut s, &mut inbox, "failure", 0).await;
    assert_eq!(s.invoked, 1, "an execution of its own");
    assert!(s.init_failure.is_none());
    assert!(s.tasks.is_empty(), "its task was awaited");

    // With reporting off, nothing is started.
    let mut s = state();
    let (tx, mut inbox) = unbounded_channel();
    tx.send(init_done("error", "init"))
        .expect("UNWRAP: the inbox is open");
    shutdown(&mut s, &mut inbox, "failure", 0).await;
    assert_eq!(s.invoked, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_for_failure_before_any_invocation_waits_briefly_for_the_init_records() {
    let mut s = state_with(ReportingState::Resolving);
    let (tx, mut inbox) = unbounded_channel();
    // Delivered 100 ms after SHUTDOWN (Lambda buffers records for 25 ms and more).
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tx.send(init_done("error", "init"));
        // The sender stays open, as the listener's does.
        std::future::pending::<()>().await;
    });
    let t0 = Instant::now();
    shutdown(&mut s, &mut inbox, "failure", 0).await;
    assert_eq!(Instant::now() - t0, Duration::from_millis(100));
    assert_eq!(s.invoked, 1, "the failed init is reported");

    // A spindown does not wait for init records.
    let mut s = state_with(ReportingState::Resolving);
    let (_tx, mut inbox) = unbounded_channel::<Inbound>();
    let t0 = Instant::now();
    shutdown(&mut s, &mut inbox, "spindown", 0).await;
    assert_eq!(Instant::now() - t0, Duration::ZERO);
}

fn proxied_event(id: &str, event: &Value) -> Inbound {
    Inbound::Proxy(proxy::Seen::Event {
        request_id: id.to_owned(),
        body: serde_json::to_vec(event).expect("UNWRAP: JSON").into(),
        complete: true,
    })
}

#[test]
fn what_the_proxy_saw_reaches_its_invocation_and_its_answer_marks_it_done() {
    let mut s = state();
    s.route(Inbound::Proxy(proxy::Seen::Polled));
    assert!(s.proxied);
    // The runtime's event can arrive before the extension's INVOKE.
    let started = json!({
        "n": 1,
        "cloudreactor_context": {"proc_wrapper_params": {"task_execution": {"uuid": "u-1"}}},
    });
    s.route(proxied_event("A", &started));
    let mut a = open(&mut s, "A");
    assert!(
        a.task.proxied,
        "the task waits for the event before creating"
    );
    s.route(Inbound::Proxy(proxy::Seen::Response {
        request_id: "A".into(),
    }));
    assert!(
        s.current.as_ref().is_some_and(|c| c.done_at.is_some()),
        "the answer marks A done"
    );
    assert_eq!(drain(&mut a.events), ["input:u-1", "answered:response"]);
    end_current(&mut s);

    let mut b = open(&mut s, "B");
    s.route(proxied_event("B", &json!({"plain": true})));
    s.route(Inbound::Proxy(proxy::Seen::Error {
        request_id: "B".into(),
        error_type: Some("unhandled".into()),
        body: br#"{"errorType": "ValueError", "errorMessage": "bad thing"}"#
            .as_slice()
            .into(),
    }));
    let events: Vec<Event> = std::iter::from_fn(|| b.events.try_recv().ok()).collect();
    assert!(matches!(&events[0], Event::Input { uuid: None, .. }));
    assert!(
        matches!(
            &events[1],
            Event::Answered(crate::invocation::Answer::Error { error_type: Some(t), error_message: Some(m) })
                if t == "ValueError" && m == "bad thing"
        ),
        "the body's errorType wins over the header's: {events:?}"
    );
}

#[test]
fn an_events_uuid_is_read_without_keeping_the_event() {
    let event = br#"{"big": [1, 2, 3], "cloudreactor_context": {"proc_wrapper_params": {"task_execution": {"uuid": "u-2"}}}}"#;
    assert_eq!(context_uuid(event).as_deref(), Some("u-2"));
    assert_eq!(context_uuid(br#"{"cloudreactor_context": {}}"#), None);
    assert_eq!(context_uuid(br#""a string event""#), None);
    assert_eq!(context_uuid(b"not json"), None);
}
