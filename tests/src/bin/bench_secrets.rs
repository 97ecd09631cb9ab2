//! Benchmark of secret fetching against moto: 50 variables that reference 5 secrets.
//!
//! Run by `tests/bench/secrets.sh`, which starts moto_server, points the AWS SDK at it and
//! counts `GetSecretValue` calls with moto's request recorder.
//!
//! * `bench_secrets count`: creates the secrets and resolves the 50 variables once with the
//!   library's resolver, printing its own fetch count (the script counts at moto).
//! * `bench_secrets time RUNS [LATENCY_MS]`: times `RUNS` resolutions with concurrent
//!   fetching against fetching the 5 secrets one by one. moto answers in about a
//!   millisecond and one request at a time, which hides what concurrency saves against a
//!   real AWS endpoint, so the requests go through a loopback proxy that delays every
//!   response by `LATENCY_MS` (default 20), like a network round trip.

use std::time::{Duration, Instant};

use proc_wrapper::config::{Args, Config};
use proc_wrapper::secrets::{Fetcher, Location, Resolver};
use procwrapper_tests::moto::Moto;
use serde_json::{Map, Value};

const SECRETS: usize = 5;
const VARIABLES: usize = 50;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Forwards loopback connections to `upstream`, delaying every chunk of response by
/// `latency`.
async fn delaying_proxy(upstream: String, latency: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("UNWRAP: loopback can be bound");
    let addr = listener.local_addr().expect("UNWRAP: bound");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(latency).await;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "count".to_owned());
    let runs: usize = args
        .next()
        .map_or(20, |r| r.parse().expect("UNWRAP: RUNS is a number"));
    let latency_ms: u64 = args
        .next()
        .map_or(20, |r| r.parse().expect("UNWRAP: LATENCY_MS is a number"));
    let moto = Moto::connect();
    let arns: Vec<String> = (0..SECRETS)
        .map(|i| {
            let fields: Map<String, Value> = (0..VARIABLES / SECRETS)
                .map(|k| (format!("k{k}"), Value::String(format!("value-{i}-{k}"))))
                .collect();
            moto.secret_string(&Moto::unique("bench"), &Value::Object(fields).to_string())
        })
        .collect();
    let env: Map<String, Value> = (0..VARIABLES)
        .map(|v| {
            let loc = format!("{}|JP:$.k{}", arns[v % SECRETS], v / SECRETS);
            (
                format!("VAR_{v}_FOR_PROC_WRAPPER_TO_RESOLVE"),
                Value::String(loc),
            )
        })
        .collect();
    let params = Config::from_sources(&Args::default(), &|k| std::env::var(k).ok())
        .expect("UNWRAP: the benchmark's environment is valid")
        .resolver;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("UNWRAP: a runtime can be built");

    if mode == "time" {
        let proxy = rt.block_on(delaying_proxy(
            moto.endpoint.trim_start_matches("http://").to_owned(),
            Duration::from_millis(latency_ms),
        ));
        // SAFETY: single-threaded at this point; the SDK reads the variable when it loads.
        unsafe { std::env::set_var("AWS_ENDPOINT_URL", &proxy) };
        time(&rt, runs, latency_ms, &arns, &env, &params);
        return;
    }
    // One resolution, counted here and (by the script) at the emulator.
    let resolver = Resolver::new(params.clone());
    let resolved = rt.block_on(resolver.resolve(env.clone(), Map::new()));
    assert!(resolved.failures.is_empty(), "{:?}", resolved.failures);
    assert_eq!(resolved.env["VAR_7"], "value-2-1");
    println!(
        "resolved {} variables referencing {SECRETS} secrets with {} fetch(es) (counted by the resolver)",
        resolved.env.len() - 1,
        resolver.fetcher().fetch_count()
    );
}

fn time(
    rt: &tokio::runtime::Runtime,
    runs: usize,
    latency_ms: u64,
    arns: &[String],
    env: &Map<String, Value>,
    params: &proc_wrapper::config::ResolverConfig,
) {
    let mut concurrent = Vec::with_capacity(runs);
    let mut sequential = Vec::with_capacity(runs);
    let locations: Vec<Location> = arns
        .iter()
        .map(|a| Location::parse(a, None, false).expect("UNWRAP: an ARN is a location"))
        .collect();
    for _ in 0..runs {
        let resolver = Resolver::new(params.clone());
        let start = Instant::now();
        let r = rt.block_on(resolver.resolve(env.clone(), Map::new()));
        concurrent.push(start.elapsed());
        assert!(r.failures.is_empty());

        let fetcher = Fetcher::new(None, None);
        let start = Instant::now();
        rt.block_on(async {
            for loc in &locations {
                fetcher
                    .fetch(loc)
                    .await
                    .expect("UNWRAP: moto has the secret");
            }
        });
        sequential.push(start.elapsed());
    }
    let (c, s) = (median(concurrent), median(sequential));
    println!(
        "wall time over {runs} runs (median), {latency_ms} ms added per response: concurrent \
         resolution of all 50 variables {:.2} ms; fetching the 5 secrets one by one {:.2} ms \
         ({:.1}x)",
        c.as_secs_f64() * 1000.0,
        s.as_secs_f64() * 1000.0,
        s.as_secs_f64() / c.as_secs_f64()
    );
}
