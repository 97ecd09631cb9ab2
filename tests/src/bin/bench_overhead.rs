//! Benchmark: the time and memory `proc_wrapper --offline-mode -- true` adds to `true`.
//!
//! Usage: `bench_overhead [PROC_WRAPPER_BINARY] [RUNS]` (defaults: `target/release/proc_wrapper`,
//! 500). Runs both commands alternately (after a warm-up), timing each from spawn to reap,
//! and reads each run's peak resident set size from `wait4`. Prints medians, p90s and the
//! overhead. `tests/bench/overhead.sh` builds the release binary and runs this.

use std::time::Duration;

use procwrapper_tests::bench::{Sample, ms, percentile, run_once};

fn main() {
    let mut args = std::env::args().skip(1);
    let wrapper = args
        .next()
        .unwrap_or_else(|| "target/release/proc_wrapper".to_owned());
    let runs: usize = args
        .next()
        .map_or(500, |r| r.parse().expect("UNWRAP: RUNS is a number"));
    let baseline: &[&str] = &["true"];
    let wrapped: &[&str] = &[&wrapper, "--offline-mode", "--", "true"];

    for _ in 0..20 {
        run_once(baseline);
        run_once(wrapped);
    }
    let (mut base, mut wrap) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        base.push(run_once(baseline));
        wrap.push(run_once(wrapped));
    }
    let summarize = |name: &str, samples: &[Sample]| {
        let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
        walls.sort();
        let mut rss: Vec<i64> = samples.iter().map(|s| s.max_rss_kb).collect();
        rss.sort_unstable();
        let median = percentile(&walls, 0.5);
        println!(
            "{name:<40} median {:7.3} ms  p90 {:7.3} ms  peak RSS median {:6} KiB  max {:6} KiB",
            ms(median),
            ms(percentile(&walls, 0.9)),
            rss[rss.len() / 2],
            rss[rss.len() - 1],
        );
        (median, rss[rss.len() - 1])
    };
    println!("runs: {runs} of each, alternating, after 20 warm-up runs");
    let (base_median, _) = summarize("true", &base);
    let (wrap_median, wrap_rss) = summarize("proc_wrapper --offline-mode -- true", &wrap);
    println!(
        "added by the wrapper (median): {:.3} ms (target <= 2 ms); wrapper peak RSS: {:.1} MiB (target <= 6 MB)",
        ms(wrap_median.saturating_sub(base_median)),
        wrap_rss as f64 / 1024.0,
    );
}
