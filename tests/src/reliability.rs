//! Rows of the reliability table (`tests/RELIABILITY.md`): each fault-injection test records
//! what it tried, how many wrapped runs it made, how many of them lost their final status, and
//! the outcome, as one JSON line appended to the file named by `PROC_WRAPPER_RELIABILITY_OUT`.
//! Without that variable, recording does nothing. `tests/bench/reliability.sh` sets it, runs
//! the fault tests and turns the lines into the table.

use std::io::Write;

/// The variable naming the file rows are appended to.
pub const OUT_VAR: &str = "PROC_WRAPPER_RELIABILITY_OUT";

/// One row: `fault` (the fault or input tried), `runs` (wrapped runs made), `lost` (runs
/// whose final status did not reach the server; `result` says when that is expected, because
/// the server never answered properly), `result` (what happened: exit codes, statuses). The
/// row also names the test (the name of the calling thread, which the harness sets).
pub fn record(fault: &str, runs: usize, lost: usize, result: &str) {
    if let Some(path) = std::env::var_os(OUT_VAR) {
        append(std::path::Path::new(&path), fault, runs, lost, result);
    }
}

/// Appends one row to `path`.
fn append(path: &std::path::Path, fault: &str, runs: usize, lost: usize, result: &str) {
    // The test harness names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or_default().to_owned();
    let mut line = serde_json::json!({
        "test": test,
        "fault": fault,
        "runs": runs,
        "lost": lost,
        "result": result,
    })
    .to_string();
    line.push('\n');
    // One write per line on a file opened for appending: lines of tests running in parallel
    // never interleave.
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!("cannot append to {} ({OUT_VAR}): {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rows.jsonl");
        append(&out, "a \"quoted\" | fault", 3, 0, "ok");
        append(&out, "another", 1, 1, "lost one");
        let text = std::fs::read_to_string(&out).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert_eq!(rows[0]["fault"], "a \"quoted\" | fault");
        assert_eq!(rows[0]["runs"], 3);
        assert_eq!(rows[1]["lost"], 1);
        assert_eq!(rows[1]["result"], "lost one");
        assert_eq!(
            rows[1]["test"],
            "reliability::tests::rows_are_appended_as_json_lines"
        );
    }
}
