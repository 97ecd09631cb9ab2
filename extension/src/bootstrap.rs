//! `cloudreactor-extension --bootstrap` (the layer's `/opt/bootstrap`): what an OS-only
//! runtime (`provided.al2023`, `provided.al2`) runs when the function has no bootstrap of its
//! own. The command it execs, after the exec wrapper's work, is
//! `PROC_WRAPPER_LAMBDA_BOOTSTRAP_COMMAND` (a command line, split as a shell would, without
//! expansions), else the function's handler setting (`_HANDLER`): an executable in
//! `LAMBDA_TASK_ROOT` (`/var/task`) unless it is a path.

use std::ffi::OsString;
use std::path::Path;

use proc_wrapper::config::table as T;

/// The command to exec, or why there is none (for a configuration error, exit 78).
pub fn command(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<OsString>, String> {
    let var = T::LAMBDA_BOOTSTRAP_COMMAND.var();
    if let Some(line) = env(var).filter(|l| !l.trim().is_empty()) {
        return match shlex::split(&line) {
            Some(words) if !words.is_empty() => Ok(words.into_iter().map(OsString::from).collect()),
            _ => Err(format!(
                "{var}='{line}' is not a command line (unbalanced quotes?)"
            )),
        };
    }
    let Some(handler) = env("_HANDLER").filter(|h| !h.trim().is_empty()) else {
        return Err(format!(
            "nothing to run: set the function's handler (_HANDLER) to the name of its \
             executable in LAMBDA_TASK_ROOT, or {var} to the command that starts it"
        ));
    };
    let handler = handler.trim();
    let path = if handler.contains('/') {
        Path::new(handler).to_path_buf()
    } else {
        let root = env("LAMBDA_TASK_ROOT").unwrap_or_else(|| "/var/task".to_owned());
        Path::new(&root).join(handler)
    };
    Ok(vec![path.into_os_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pairs: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        command(&|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).map(|c| {
            c.into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        })
    }

    #[test]
    fn the_variable_wins_then_the_handler_in_the_task_root() {
        assert_eq!(
            run(&[
                (
                    "PROC_WRAPPER_LAMBDA_BOOTSTRAP_COMMAND",
                    "./app --port '80 81'"
                ),
                ("_HANDLER", "bootstrap"),
            ]),
            Ok(vec!["./app".into(), "--port".into(), "80 81".into()])
        );
        assert_eq!(
            run(&[("_HANDLER", "my-handler"), ("LAMBDA_TASK_ROOT", "/tmp/t")]),
            Ok(vec!["/tmp/t/my-handler".into()])
        );
        assert_eq!(
            run(&[("_HANDLER", "my-handler")]),
            Ok(vec!["/var/task/my-handler".into()])
        );
        assert_eq!(
            run(&[("_HANDLER", "/opt/bin/h")]),
            Ok(vec!["/opt/bin/h".into()])
        );
    }

    #[test]
    fn nothing_to_run_names_both_settings() {
        let e = run(&[]).unwrap_err();
        assert!(e.contains("_HANDLER") && e.contains("PROC_WRAPPER_LAMBDA_BOOTSTRAP_COMMAND"));
        let e = run(&[("PROC_WRAPPER_LAMBDA_BOOTSTRAP_COMMAND", "app 'oops")]).unwrap_err();
        assert!(
            e.contains("PROC_WRAPPER_LAMBDA_BOOTSTRAP_COMMAND='app 'oops'"),
            "{e}"
        );
    }
}
