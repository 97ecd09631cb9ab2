//! The backlog of Lambda reports (`proc_wrapper::lambda::backlog`) against the fake API
//! server: outages of every kind lose no report, order holds per execution, the bound drops
//! the oldest and counts them, and refusals are final.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use proc_wrapper::api::ApiClient;
use proc_wrapper::config::{Args, Config};
use proc_wrapper::lambda::backlog::{Backlog, Item, Summary};
use procwrapper_tests::fake_api::{API_KEY, FakeApi, Fault, Recorded, TASK_UUID};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::time::Instant;

const LIMIT: Duration = Duration::from_secs(30);

fn client(api: &FakeApi) -> ApiClient {
    let env = |k: &str| match k {
        "PROC_WRAPPER_API_BASE_URL" => Some(api.url.clone()),
        "PROC_WRAPPER_API_KEY" => Some(API_KEY.to_owned()),
        "PROC_WRAPPER_TASK_UUID" => Some(TASK_UUID.to_owned()),
        "PROC_WRAPPER_API_REQUEST_TIMEOUT_SECONDS" => Some("5".to_owned()),
        _ => None,
    };
    let config = Config::from_sources(&Args::default(), &env).unwrap();
    ApiClient::new(config.api).unwrap()
}

/// A creation body like the extension's: a large part shared by every invocation.
fn start_body(n: usize, status: &str) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "status": status,
        "started_at": format!("2026-12-01T00:00:{:02}+00:00", n % 60),
        "task": {"uuid": TASK_UUID, "execution_method_capability_details": {"x": "y".repeat(800)}},
        "execution_method_details": {"aws_request_id": format!("req-{n}")},
    }) else {
        unreachable!()
    };
    m
}

fn final_fields(status: &str) -> Map<String, Value> {
    let Value::Object(m) = json!({"status": status, "finished_at": "2026-12-01T00:01:00+00:00"})
    else {
        unreachable!()
    };
    m
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The request id of a recorded creation.
fn request_id(r: &Recorded) -> Option<String> {
    r.body["execution_method_details"]["aws_request_id"]
        .as_str()
        .map(str::to_owned)
}

/// Pushes the start and the final of invocation `n`, as the extension does for one that
/// outlives the creation delay; the receiver fires when the final is delivered.
fn invocation(backlog: &Backlog, n: usize) -> oneshot::Receiver<()> {
    let key = format!("req-{n}");
    backlog.push(
        &key,
        Item::Start {
            body: start_body(n, "RUNNING"),
            known_uuid: None,
            is_final: false,
        },
        None,
    );
    let (tx, rx) = oneshot::channel();
    backlog.push(
        &key,
        Item::Update {
            body: final_fields("SUCCEEDED"),
            is_final: true,
        },
        Some(tx),
    );
    backlog.end(&key);
    rx
}

/// Every invocation's final status reached the server, after its creation.
fn assert_all_final(api: &FakeApi, n: usize) {
    let requests = api.requests();
    for i in 0..n {
        let key = format!("req-{i}");
        let created: Vec<&Recorded> = requests
            .iter()
            .filter(|r| r.method == "POST" && request_id(r).as_deref() == Some(&key))
            .collect();
        let uuid_created = created.iter().any(|r| r.status().is_some());
        assert!(uuid_created, "{key} was never created: {requests:#?}");
    }
    let finals = api
        .created()
        .iter()
        .filter(|uuid| api.status_of(uuid).as_deref() == Some("SUCCEEDED"))
        .count();
    assert_eq!(finals, n, "{requests:#?}");
}

#[test]
fn a_503_outage_loses_no_final_status() {
    rt().block_on(async {
        let api = FakeApi::start();
        // Six answers of 503 with Retry-After: 1, then health.
        api.push_faults((0..6).map(|_| Fault::RetryAfter(503, "1".into())));
        let backlog = Backlog::start(client(&api), 1000);
        let delivered: Vec<_> = (0..6).map(|n| invocation(&backlog, n)).collect();
        for d in delivered {
            tokio::time::timeout(LIMIT, d).await.unwrap().unwrap();
        }
        assert!(backlog.healthy());
        assert_all_final(&api, 6);
        let summary = backlog.flush(Instant::now() + LIMIT).await;
        assert_eq!(summary, Summary::default());
    });
}

#[test]
fn a_refused_connection_outage_loses_no_final_status() {
    rt().block_on(async {
        let api = FakeApi::start();
        // Connections dropped without an answer, as when nothing listens.
        api.push_faults((0..5).map(|_| Fault::Drop));
        let backlog = Backlog::start(client(&api), 1000);
        let delivered: Vec<_> = (0..4).map(|n| invocation(&backlog, n)).collect();
        for d in delivered {
            tokio::time::timeout(LIMIT, d).await.unwrap().unwrap();
        }
        assert_all_final(&api, 4);
    });
}

#[test]
fn a_slow_server_delays_the_reports_but_loses_none() {
    rt().block_on(async {
        let api = FakeApi::start();
        // Every answer after 0.7 s, under the 5 s request timeout.
        api.start_outage(Fault::Delay(Duration::from_millis(700)));
        let backlog = Backlog::start(client(&api), 1000);
        let delivered: Vec<_> = (0..6).map(|n| invocation(&backlog, n)).collect();
        for d in delivered {
            tokio::time::timeout(LIMIT, d).await.unwrap().unwrap();
        }
        assert!(backlog.healthy(), "a slow answer is an answer");
        assert_all_final(&api, 6);
        let summary = backlog.flush(Instant::now() + LIMIT).await;
        assert_eq!(summary, Summary::default());
    });
}

#[test]
fn a_start_and_final_that_waited_together_go_as_one_creation() {
    rt().block_on(async {
        let api = FakeApi::start();
        api.push_faults([Fault::RetryAfter(503, "1".into())]);
        let backlog = Backlog::start(client(&api), 1000);
        // The first creation fails; the second invocation's start and final wait together.
        let first = invocation(&backlog, 0);
        assert!(procwrapper_tests::wait_until(LIMIT, || !backlog.healthy()));
        let second = invocation(&backlog, 1);
        tokio::time::timeout(LIMIT, first).await.unwrap().unwrap();
        tokio::time::timeout(LIMIT, second).await.unwrap().unwrap();
        let requests = api.requests();
        let of_second: Vec<&Recorded> = requests
            .iter()
            .filter(|r| request_id(r).as_deref() == Some("req-1"))
            .collect();
        assert_eq!(of_second.len(), 1, "{requests:#?}");
        assert_eq!(of_second[0].status(), Some("SUCCEEDED"));
        assert_all_final(&api, 2);
    });
}

#[test]
fn a_full_backlog_drops_the_oldest_and_counts_them() {
    rt().block_on(async {
        let api = FakeApi::start();
        api.push_faults([Fault::RetryAfter(503, "2".into())]);
        let backlog = Backlog::start(client(&api), 3);
        let key = |n: usize| format!("req-{n}");
        let push = |n: usize| {
            backlog.push(
                &key(n),
                Item::Start {
                    body: start_body(n, "SUCCEEDED"),
                    known_uuid: None,
                    is_final: true,
                },
                None,
            );
            backlog.end(&key(n));
        };
        push(0);
        assert!(procwrapper_tests::wait_until(LIMIT, || !backlog.healthy()));
        for n in 1..=10 {
            push(n);
        }
        let summary = backlog.flush(Instant::now() + LIMIT).await;
        // 11 records for a bound of 3: the 8 oldest went.
        assert_eq!(summary.dropped, 8, "{summary:?}");
        assert_eq!(summary.unsent, 0, "{summary:?}");
        // The first request was the one answered 503; then the three newest, at once.
        let mut delivered: Vec<String> =
            api.requests()[1..].iter().filter_map(request_id).collect();
        delivered.sort();
        assert_eq!(delivered, [key(10), key(8), key(9)]);
        assert_eq!(api.created().len(), 3);
    });
}

#[test]
fn a_refusal_is_final_for_its_record_and_the_others_go_on() {
    rt().block_on(async {
        let api = FakeApi::start();
        api.push_faults([Fault::Body(
            400,
            "application/json".into(),
            json!({"task": ["Task is required"]}).to_string(),
        )]);
        let backlog = Backlog::start(client(&api), 1000);
        let refused = invocation(&backlog, 0);
        let fine = invocation(&backlog, 1);
        // A refused start: its final can never go, and the waiter hears so.
        tokio::time::timeout(LIMIT, refused).await.unwrap().unwrap();
        tokio::time::timeout(LIMIT, fine).await.unwrap().unwrap();
        let summary = backlog.flush(Instant::now() + LIMIT).await;
        assert_eq!(summary.given_up, 2, "the start and its final: {summary:?}");
        assert_eq!(api.requests().len(), 3, "{:#?}", api.requests());
    });
}

#[test]
fn a_creation_409_is_retried_and_an_update_409_is_final() {
    rt().block_on(async {
        let api = FakeApi::start();
        api.push_faults([Fault::Status(409)]);
        let backlog = Backlog::start(client(&api), 1000);
        let d = invocation(&backlog, 0);
        tokio::time::timeout(LIMIT, d).await.unwrap().unwrap();
        assert_all_final(&api, 1);

        // An update after the end is refused with 409: given up, not retried.
        let key = "req-late";
        let (tx, rx) = oneshot::channel();
        backlog.push(
            key,
            Item::Start {
                body: start_body(7, "SUCCEEDED"),
                known_uuid: None,
                is_final: true,
            },
            Some(tx),
        );
        tokio::time::timeout(LIMIT, rx).await.unwrap().unwrap();
        let (tx, rx) = oneshot::channel();
        backlog.push(
            key,
            Item::Update {
                body: final_fields("FAILED"),
                is_final: true,
            },
            Some(tx),
        );
        backlog.end(key);
        tokio::time::timeout(LIMIT, rx).await.unwrap().unwrap();
        let summary = backlog.flush(Instant::now() + LIMIT).await;
        assert_eq!(summary.given_up, 1, "{summary:?}");
        let patches = api
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.status() == Some("FAILED"))
            .count();
        assert_eq!(patches, 1, "tried once: {:#?}", api.requests());
    });
}

#[test]
fn flush_gives_up_at_its_deadline_and_counts_what_is_left() {
    rt().block_on(async {
        let api = FakeApi::start();
        api.push_faults((0..50).map(|_| Fault::RetryAfter(503, "30".into())));
        let backlog = Backlog::start(client(&api), 1000);
        let _pending: Vec<_> = (0..3).map(|n| invocation(&backlog, n)).collect();
        assert!(procwrapper_tests::wait_until(LIMIT, || !backlog.healthy()));
        let summary = backlog
            .flush(Instant::now() + Duration::from_millis(300))
            .await;
        assert_eq!(summary.unsent, 3, "{summary:?}");
        assert_eq!(summary.lost(), 3);
    });
}
