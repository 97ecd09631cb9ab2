//! The proxy between a runtime client (reqwest, or hyper for streamed bodies) and a fake
//! Lambda Runtime API.

use std::sync::{Arc, Mutex};

use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Request, Response};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::*;

/// What the fake Runtime API received: method, path, body, and the body's frames as they
/// arrived (data sizes; `usize::MAX` for trailers).
#[derive(Clone, Default)]
struct Received {
    calls: Arc<Mutex<Vec<Call>>>,
    frames: Arc<Mutex<Vec<usize>>>,
}

/// Method, path, body.
type Call = (String, String, Vec<u8>);

const EVENT: &str =
    r#"{"cloudreactor_context": {"proc_wrapper_params": {"task_execution": {"uuid": "u-1"}}}}"#;

/// A fake Runtime API: `/next` answers an event of `req-1`; a post is answered 202 with
/// its length, or 413 when its path says `too-big`.
async fn fake_runtime_api() -> (String, Received) {
    fake_runtime_api_with(true).await
}

/// The same; without `keep_alive`, it closes each connection after its answer.
async fn fake_runtime_api_with(keep_alive: bool) -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received = Received::default();
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
                        let mut body = req.into_body();
                        let mut bytes = Vec::new();
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Some(d) = frame.data_ref() {
                                log.frames.lock().unwrap().push(d.len());
                                bytes.extend_from_slice(d);
                            } else {
                                log.frames.lock().unwrap().push(usize::MAX);
                            }
                        }
                        let length = bytes.len();
                        log.calls
                            .lock()
                            .unwrap()
                            .push((method.clone(), path.clone(), bytes));
                        let response = if path.ends_with("/invocation/next") {
                            Response::builder()
                                .header("Lambda-Runtime-Aws-Request-Id", "req-1")
                                .header("Lambda-Runtime-Deadline-Ms", "1700000000000")
                                .body(Full::new(Bytes::from_static(EVENT.as_bytes())))
                        } else if path.contains("too-big") {
                            Response::builder()
                                .status(413)
                                .body(Full::new(Bytes::from_static(b"{}")))
                        } else {
                            Response::builder()
                                .status(202)
                                .body(Full::new(Bytes::from(length.to_string())))
                        };
                        Ok::<_, Infallible>(response.unwrap())
                    }
                });
                let _ = http1::Builder::new()
                    .keep_alive(keep_alive)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

/// A proxy on a free port in front of `upstream`; what it sees arrives on the receiver.
fn proxy(upstream: &str) -> (u16, UnboundedReceiver<Seen>) {
    let (tx, rx) = unbounded_channel();
    let sink: Sink = Arc::new(move |seen| {
        let _ = tx.send(seen);
    });
    (spawn(0, upstream.to_owned(), sink).unwrap(), rx)
}

#[tokio::test]
async fn the_event_passes_unchanged_and_the_extension_sees_it() {
    let (upstream, received) = fake_runtime_api().await;
    let (port, mut rx) = proxy(&upstream);
    let base = format!("http://127.0.0.1:{port}/2018-06-01/runtime/invocation");
    let next = reqwest::get(format!("{base}/next")).await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(next.headers()["lambda-runtime-aws-request-id"], "req-1");
    assert_eq!(
        next.headers()["lambda-runtime-deadline-ms"],
        "1700000000000"
    );
    assert_eq!(next.text().await.unwrap(), EVENT);
    assert_eq!(recv(&mut rx).await, Some(Seen::Polled));
    let event = Some(Seen::Event {
        request_id: "req-1".into(),
        body: Bytes::from_static(EVENT.as_bytes()),
        complete: true,
    });
    assert_eq!(recv(&mut rx).await, event);
    // The runtime's next polls are not told again; their events are.
    let next = reqwest::get(format!("{base}/next")).await.unwrap();
    assert_eq!(next.text().await.unwrap(), EVENT);
    assert_eq!(recv(&mut rx).await, event);
    assert_eq!(
        received.calls.lock().unwrap()[0].1,
        "/2018-06-01/runtime/invocation/next"
    );
}

#[tokio::test]
async fn a_response_and_an_error_pass_whole_and_are_seen_once_lambda_accepted_them() {
    let (upstream, received) = fake_runtime_api().await;
    let (port, mut rx) = proxy(&upstream);
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
        after_posted(&mut rx, "req-1").await,
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
        after_posted(&mut rx, "req-2").await,
        Some(Seen::Error {
            request_id: "req-2".into(),
            error_type: Some("Runtime.ExitError".into()),
            body: Bytes::from_static(error.as_bytes()),
        })
    );
    let got = received.calls.lock().unwrap();
    assert_eq!(
        got[0].2.len(),
        48 * 64 * 1024,
        "the whole response reached Lambda"
    );
    assert!(got[0].2.starts_with(b"aaaa") && got[0].2.ends_with(b"vvvv"));
    assert_eq!(got[1].2, error.as_bytes());
}

#[tokio::test]
async fn a_response_lambda_refuses_passes_its_answer_on_and_settles_nothing() {
    let (upstream, _received) = fake_runtime_api().await;
    let (port, mut rx) = proxy(&upstream);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/2018-06-01/runtime/invocation");
    let answer = client
        .post(format!("{base}/too-big/response"))
        .body("x".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413, "the runtime sees Lambda's answer");
    assert_eq!(
        recv(&mut rx).await,
        Some(Seen::Posted {
            request_id: "too-big".into()
        })
    );
    // The runtime then posts its error, which is what is seen.
    let answer = client
        .post(format!("{base}/req-3/error"))
        .body(r#"{"errorType": "Function.ResponseSizeTooLarge"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    assert!(matches!(
        after_posted(&mut rx, "req-3").await,
        Some(Seen::Error { request_id, error_type: None, .. }) if request_id == "req-3"
    ));
}

/// A client connection to the proxy, for bodies sent frame by frame.
async fn hyper_client(port: u16) -> SendRequest<Channel<Bytes>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// Waits until the fake Runtime API has received `n` frames.
async fn frames_received(received: &Received, n: usize) -> Vec<usize> {
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let frames = received.frames.lock().unwrap().clone();
        if frames.len() >= n || tokio::time::Instant::now() > until {
            return frames;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_streamed_response_passes_frame_by_frame_and_its_error_trailer_is_seen() {
    let (upstream, received) = fake_runtime_api().await;
    let (port, mut rx) = proxy(&upstream);
    let mut sender = hyper_client(port).await;
    let (mut body_tx, body) = Channel::<Bytes>::new(4);
    let request = Request::post("/2018-06-01/runtime/invocation/req-4/response")
        .header("Host", "127.0.0.1")
        .header("Lambda-Runtime-Function-Response-Mode", "streaming")
        .header("Transfer-Encoding", "chunked")
        .header(
            "Trailer",
            "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
        )
        .body(body)
        .unwrap();
    let answer = tokio::spawn(async move { sender.send_request(request).await });
    body_tx
        .send_data(Bytes::from_static(b"first part;"))
        .await
        .unwrap();
    // The first part reaches Lambda while the runtime has not sent the second: nothing
    // waits for the whole body.
    assert_eq!(frames_received(&received, 1).await, vec![11]);
    body_tx
        .send_data(Bytes::from_static(b"second part"))
        .await
        .unwrap();
    assert_eq!(frames_received(&received, 2).await, vec![11, 11]);
    let mut trailers = HeaderMap::new();
    trailers.insert(
        "Lambda-Runtime-Function-Error-Type",
        "Runtime.StreamError".parse().unwrap(),
    );
    trailers.insert(
        "Lambda-Runtime-Function-Error-Body",
        "eyJlcnJvck1lc3NhZ2UiOiJicm9rZW4ifQ==".parse().unwrap(),
    );
    body_tx.send_trailers(trailers).await.unwrap();
    drop(body_tx);
    let answer = answer.await.unwrap().unwrap();
    assert_eq!(answer.status(), 202);
    assert_eq!(
        received.calls.lock().unwrap()[0].2,
        b"first part;second part",
        "the streamed body reached Lambda intact"
    );
    assert_eq!(
        after_posted(&mut rx, "req-4").await,
        Some(Seen::Error {
            request_id: "req-4".into(),
            error_type: Some("Runtime.StreamError".into()),
            body: Bytes::from_static(br#"{"errorMessage":"broken"}"#),
        })
    );
}

#[tokio::test]
async fn lambdas_endpoint_unreachable_answers_502() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = closed.local_addr().unwrap().to_string();
    drop(closed);
    let (port, _rx) = proxy(&upstream);
    let next = reqwest::get(format!(
        "http://127.0.0.1:{port}/2018-06-01/runtime/invocation/next"
    ))
    .await
    .unwrap();
    assert_eq!(next.status(), 502);
}

#[tokio::test]
async fn the_probe_finds_the_proxy_of_this_environment_only() {
    let (upstream, _received) = fake_runtime_api().await;
    let (port, mut rx) = proxy(&upstream);
    let wait = std::time::Duration::from_millis(200);
    assert_eq!(probe(port, &upstream, wait).await, Ok(()));
    // The exec wrapper starts the runtime on the proxy next: the extension learns it now.
    assert_eq!(recv(&mut rx).await, Some(Seen::Polled));
    let other = probe(port, "127.0.0.1:1", wait).await.unwrap_err();
    assert!(other.contains("forwards to"), "{other}");
    // Something else on the port: the fake Runtime API answers 202 there.
    let port_of = |a: &str| a.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let not_proxy = probe(port_of(&upstream), &upstream, wait)
        .await
        .unwrap_err();
    assert!(not_proxy.contains("not the proxy"), "{not_proxy}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = closed.local_addr().unwrap().port();
    drop(closed);
    let nobody = probe(free, &upstream, wait).await.unwrap_err();
    assert!(nobody.to_lowercase().contains("refused"), "{nobody}");
}

#[tokio::test]
async fn the_exec_wrapper_points_the_runtime_at_the_proxy_or_leaves_it() {
    let (upstream, _received) = fake_runtime_api().await;
    let (port, _rx) = proxy(&upstream);
    let env = |pairs: &[(&str, &str)]| -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    };
    let api = |e: &[(OsString, OsString)]| {
        e.iter()
            .find(|(k, _)| k == "AWS_LAMBDA_RUNTIME_API")
            .map(|(_, v)| v.to_string_lossy().into_owned())
    };
    let port_text = port.to_string();
    let mut on = env(&[
        ("AWS_LAMBDA_RUNTIME_API", &upstream),
        ("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT", &port_text),
    ]);
    route_runtime(&mut on).await;
    assert_eq!(api(&on), Some(format!("127.0.0.1:{port}")));
    let mut off = env(&[
        ("AWS_LAMBDA_RUNTIME_API", &upstream),
        ("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT", &port_text),
        ("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY", "FALSE"),
    ]);
    route_runtime(&mut off).await;
    assert_eq!(api(&off), Some(upstream.clone()));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let mut missing = env(&[
        ("AWS_LAMBDA_RUNTIME_API", &upstream),
        ("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT", &free),
    ]);
    route_runtime(&mut missing).await;
    assert_eq!(api(&missing), Some(upstream.clone()), "fails open");
    let mut outside = env(&[("PATH", "/bin")]);
    route_runtime(&mut outside).await;
    assert_eq!(api(&outside), None);
}

#[test]
fn the_proxy_settings_name_the_variable_at_fault() {
    let read = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        port_from_env(&|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    };
    assert_eq!(read(&[]), (Some(DEFAULT_PORT), vec![]));
    assert_eq!(
        read(&[("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY", "false")]).0,
        None
    );
    assert_eq!(
        read(&[("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT", "9100")]).0,
        Some(9100)
    );
    for bad in ["9001", "0", "http", "70000"] {
        let (port, warnings) = read(&[("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT", bad)]);
        assert_eq!(port, Some(DEFAULT_PORT));
        assert!(
            warnings[0].contains(&format!("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY_PORT='{bad}'")),
            "{warnings:?}"
        );
    }
    let (port, warnings) = read(&[("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY", "maybe")]);
    assert_eq!(port, Some(DEFAULT_PORT));
    assert!(warnings[0].contains("PROC_WRAPPER_LAMBDA_RUNTIME_PROXY='maybe'"));
}

/// The next thing the proxy saw, within 10 s.
async fn recv(rx: &mut UnboundedReceiver<Seen>) -> Option<Seen> {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
}

/// A runtime on `curl` asks `Expect: 100-continue` for a body over 1 KiB, and waits a
/// second for the interim answer before it sends the body anyway: the proxy gives it at once.
#[tokio::test]
async fn a_runtime_that_expects_100_continue_gets_it_at_once_and_its_body_passes() {
    let (upstream, received) = fake_runtime_api().await;
    let (port, mut rx) = proxy(&upstream);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let body = "y".repeat(5000);
    let head = format!(
        "POST /2018-06-01/runtime/invocation/req-5/response HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_millis(500), stream.read(&mut buf))
        .await
        .expect("UNWRAP: the interim answer comes at once")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the proxy closed the connection");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 202"));
    assert_eq!(
        after_posted(&mut rx, "req-5").await,
        Some(Seen::Response {
            request_id: "req-5".into()
        })
    );
    assert_eq!(received.calls.lock().unwrap()[0].2.len(), 5000);
}

#[tokio::test]
async fn calls_go_on_when_lambda_closes_the_connection_after_each_answer() {
    let (upstream, received) = fake_runtime_api_with(false).await;
    let (port, _rx) = proxy(&upstream);
    // One kept-alive connection from the runtime, several calls on it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/2018-06-01/runtime/invocation");
    for i in 0..5 {
        let next = client.get(format!("{base}/next")).send().await.unwrap();
        assert_eq!(next.status(), 200, "call {i}");
        assert_eq!(next.text().await.unwrap(), EVENT);
        let answer = client
            .post(format!("{base}/req-{i}/response"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202, "call {i}");
    }
    assert_eq!(received.calls.lock().unwrap().len(), 10);
}

/// Asserts that the next thing seen is that the runtime posted its answer to `request_id`,
/// and returns the one after it (within 10 s).
async fn after_posted(rx: &mut UnboundedReceiver<Seen>, request_id: &str) -> Option<Seen> {
    assert_eq!(
        recv(rx).await,
        Some(Seen::Posted {
            request_id: request_id.into()
        })
    );
    recv(rx).await
}

#[tokio::test]
async fn when_its_process_cannot_start_or_keeps_dying_the_proxy_runs_in_the_extension() {
    // A program that is not there, and one that ends at once whatever it is given.
    for program in ["/nonexistent/cloudreactor-extension", "/bin/true"] {
        let (upstream, _received) = fake_runtime_api().await;
        let (tx, mut rx) = unbounded_channel();
        let sink: Sink = Arc::new(move |seen| {
            let _ = tx.send(seen);
        });
        let port = process::start(program.into(), 0, upstream.clone(), sink).unwrap();
        // The socket listens from the start; whoever serves it answers.
        let wait = std::time::Duration::from_secs(20);
        assert_eq!(probe(port, &upstream, wait).await, Ok(()), "{program}");
        let next = reqwest::get(format!(
            "http://127.0.0.1:{port}/2018-06-01/runtime/invocation/next"
        ))
        .await
        .unwrap();
        assert_eq!(next.text().await.unwrap(), EVENT, "{program}");
        assert_eq!(recv(&mut rx).await, Some(Seen::Polled), "{program}");
        assert!(
            matches!(recv(&mut rx).await, Some(Seen::Event { .. })),
            "{program}"
        );
    }
}
