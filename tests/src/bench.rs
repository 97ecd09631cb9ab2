//! Helpers of the benchmark programs: timing a command from spawn to reap, with its peak
//! resident memory.

use std::ffi::CString;
use std::time::{Duration, Instant};

/// One timed run.
pub struct Sample {
    /// Wall time from spawn to reap.
    pub wall: Duration,
    /// Peak resident set size, in KiB.
    pub max_rss_kb: i64,
}

/// Runs `argv` with stdout/stderr to /dev/null; panics unless it exits 0.
pub fn run_once(argv: &[&str]) -> Sample {
    run_once_env(argv, &[])
}

/// Like [`run_once`], with extra environment variables.
pub fn run_once_env(argv: &[&str], env: &[(&str, &str)]) -> Sample {
    let c_args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(*a).expect("UNWRAP: arguments have no NUL"))
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // The environment is prepared before fork: the child may only make async-signal-safe
    // calls, and the benchmark has other threads (the fake API server).
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| !env.iter().any(|(e, _)| e == k))
        .collect();
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let c_env: Vec<CString> = vars
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")).expect("UNWRAP: variables have no NUL"))
        .collect();
    let mut envp: Vec<*const libc::c_char> = c_env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let start = Instant::now();
    // SAFETY: fork + execvp + _exit in the child, with pointers that outlive the call.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child, only async-signal-safe calls.
        unsafe {
            let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            libc::dup2(devnull, 1);
            libc::dup2(devnull, 2);
            libc::execvpe(ptrs[0], ptrs.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: rusage is plain data, zero-initialised.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals.
    let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    let wall = start.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{argv:?} did not exit 0 (status {status})"
    );
    Sample {
        wall,
        max_rss_kb: usage.ru_maxrss,
    }
}

/// The `p` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
