//! The time the Rust Lambda handler wrapper (`proc_wrapper::lambda::handler`) and
//! `ManagedCall` add per call, against the local fake API server: the same trivial handler
//! called N times bare, wrapped and reporting to the API server (one request per invocation),
//! wrapped with the extension attached (UDP hand-off messages only), and as a `ManagedCall`
//! offline and online.
//!
//! Usage: `bench_handler [N]`

use std::time::{Duration, Instant};

use lambda_runtime::tower::{Layer, Service, ServiceExt};
use lambda_runtime::{Context, LambdaEvent, service_fn};
use proc_wrapper::lambda::handler::CloudReactorLayer;
use proc_wrapper::managed::ManagedCall;
use procwrapper_tests::bench::{ms, percentile};
use procwrapper_tests::fake_api::{API_KEY, FakeApi};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    Ok(json!({"echo": event.payload}))
}

fn event(i: usize) -> LambdaEvent<Value> {
    let mut context = Context::default();
    context.request_id = format!("req-{i}");
    context.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench".into();
    LambdaEvent::new(json!({"i": i}), context)
}

fn lambda_env(api: &FakeApi, extension: bool) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_REGION", "us-east-1"),
        ("PROC_WRAPPER_API_BASE_URL", api.url.as_str()),
        ("PROC_WRAPPER_API_KEY", API_KEY),
        (
            "PROC_WRAPPER_AUTO_CREATE_TASK_RUN_ENVIRONMENT_NAME",
            "bench",
        ),
        ("PROC_WRAPPER_LOG_LEVEL", "WARNING"),
        (
            "PROC_WRAPPER_LAMBDA_EXTENSION",
            if extension { "TRUE" } else { "FALSE" },
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn summary(name: &str, mut times: Vec<Duration>, base: Option<Duration>) -> Duration {
    times.sort();
    let median = percentile(&times, 0.5);
    let added = base.map_or(String::new(), |b| {
        format!("  added {:8.3} ms", ms(median.saturating_sub(b)))
    });
    println!(
        "{name:<52} median {:8.3} ms  p90 {:8.3} ms{added}",
        ms(median),
        ms(percentile(&times, 0.9))
    );
    median
}

async fn time_service<S>(mut service: S, n: usize) -> Vec<Duration>
where
    S: Service<LambdaEvent<Value>, Response = Value>,
    S::Error: std::fmt::Debug,
{
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let ready = service.ready().await.expect("UNWRAP: ready");
        ready
            .call(event(i))
            .await
            .expect("UNWRAP: the handler succeeds");
        times.push(start.elapsed());
    }
    times
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("UNWRAP: a runtime");
    let api = FakeApi::start();
    runtime.block_on(async {
        let bare = summary(
            "handler alone",
            time_service(service_fn(handler), n).await,
            None,
        );
        let wrapped =
            CloudReactorLayer::with_env(lambda_env(&api, false)).layer(service_fn(handler));
        // The first call resolves the settings; it is left out.
        let mut times = time_service(wrapped, n + 1).await;
        times.remove(0);
        summary("wrapped, reporting to the API server", times, Some(bare));
        let posts = api.requests().len();
        println!("  requests received: {posts} for {} invocations", n + 1);
        let handed = CloudReactorLayer::with_env(lambda_env(&api, true)).layer(service_fn(handler));
        summary(
            "wrapped, extension attached (UDP hand-off)",
            time_service(handed, n).await,
            Some(bare),
        );
        let mut offline = Vec::new();
        let mut online = Vec::new();
        for i in 0..n {
            for (times, env) in [
                (
                    &mut offline,
                    vec![("PROC_WRAPPER_OFFLINE_MODE".to_owned(), "TRUE".to_owned())],
                ),
                (&mut online, {
                    let mut env = lambda_env(&api, false);
                    env.push(("PROC_WRAPPER_TASK_NAME".to_owned(), "bench".to_owned()));
                    env.push((
                        "PROC_WRAPPER_AUTO_CREATE_TASK".to_owned(),
                        "TRUE".to_owned(),
                    ));
                    env
                }),
            ] {
                let start = Instant::now();
                let r = ManagedCall::new()
                    .with_env(env)
                    .call(|_| async move { Ok::<_, String>(i) })
                    .await;
                assert!(r.is_ok());
                times.push(start.elapsed());
            }
        }
        summary(
            "ManagedCall offline (settings read per call)",
            offline,
            None,
        );
        summary(
            "ManagedCall reporting (creation + final update)",
            online,
            None,
        );
    });
}
