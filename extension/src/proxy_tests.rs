//! The proxy between a runtime client (reqwest here) and a fake Lambda Runtime API.

use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use tokio::sync::mpsc::unbounded_channel;

use super::*;

/// What the fake Runtime API received: method, path, body.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

const EVENT: &str =
    r#"{"cloudreactor_context": {"proc_wrapper_params": {"task_execution": {"uuid": "u-1"}}}}"#;

async fn fake_runtime_api() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received: Received = Arc::default();
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        log.lock()
                            .unwrap()
                            .push((method.clone(), path.clone(), body.to_vec()));
                        let response = if path.ends_with("/invocation/next") {
                            Response::builder()
                                .header("Lambda-Runtime-Aws-Request-Id", "req-1")
                                .header("Lambda-Runtime-Deadline-Ms", "1700000000000")
                                .body(Full::new(Bytes::from_static(EVENT.as_bytes())))
                        } else {
                            Response::builder()
                                .status(202)
                                .body(Full::new(Bytes::from(format!("{}", body.len()))))
                        };
                        Ok::<_, Infallible>(response.unwrap())
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

#[tokio::test]
async fn the_event_passes_unchanged_and_the_extension_sees_it() {
    let (upstream, received) = fake_runtime_api().await;
    let (tx, mut rx) = unbounded_channel();
    let port = start(0, upstream, tx, CancellationToken::new())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/2018-06-01/runtime/invocation");
    let next = reqwest::get(format!("{base}/next")).await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(next.headers()["lambda-runtime-aws-request-id"], "req-1");
    assert_eq!(
        next.headers()["lambda-runtime-deadline-ms"],
        "1700000000000"
    );
    assert_eq!(next.text().await.unwrap(), EVENT);
    assert_eq!(
        recv(&mut rx).await,
        Some(Seen::Event {
            request_id: "req-1".into(),
            body: Bytes::from_static(EVENT.as_bytes()),
            complete: true,
        })
    );
    assert_eq!(
        received.lock().unwrap()[0].1,
        "/2018-06-01/runtime/invocation/next"
    );
}

#[tokio::test]
async fn a_response_and_an_error_pass_whole_and_are_seen_when_they_end() {
    let (upstream, received) = fake_runtime_api().await;
    let (tx, mut rx) = unbounded_channel();
    let port = start(0, upstream, tx, CancellationToken::new())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/2018-06-01/runtime/invocation");
    let client = reqwest::Client::new();
    // A response bigger than the tap keeps: it passes frame by frame.
    let big: Vec<u8> = (0..48 * 64 * 1024u32)
        .map(|i| b'a' + u8::try_from(i / (64 * 1024) % 26).unwrap())
        .collect();
    let answer = client
        .post(format!("{base}/req-1/response"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.text().await.unwrap(), (48 * 64 * 1024).to_string());
    assert_eq!(
        recv(&mut rx).await,
        Some(Seen::Response {
            request_id: "req-1".into()
        })
    );
    let error = r#"{"errorType": "Runtime.ExitError", "errorMessage": "exit status 1"}"#;
    let answer = client
        .post(format!("{base}/req-2/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.ExitError")
        .body(error)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(
        recv(&mut rx).await,
        Some(Seen::Error {
            request_id: "req-2".into(),
            body: Bytes::from_static(error.as_bytes()),
        })
    );
    let got = received.lock().unwrap();
    assert_eq!(
        got[0].2.len(),
        48 * 64 * 1024,
        "the whole response reached Lambda"
    );
    assert!(got[0].2.starts_with(b"aaaa") && got[0].2.ends_with(b"vvvv"));
    assert_eq!(got[1].2, error.as_bytes());
}

#[tokio::test]
async fn lambdas_endpoint_unreachable_answers_502() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (tx, _rx) = unbounded_channel();
    let port = start(0, upstream, tx, CancellationToken::new())
        .await
        .unwrap();
    let next = reqwest::get(format!(
        "http://127.0.0.1:{port}/2018-06-01/runtime/invocation/next"
    ))
    .await
    .unwrap();
    assert_eq!(next.status(), 502);
}

/// The next thing the proxy saw, within 10 s.
async fn recv(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>) -> Option<Seen> {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
}
