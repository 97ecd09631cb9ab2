//! Turning the configured command into what is spawned: shell-wrapping stripping and shell
//! mode detection (README "How the process is supervised").
//!
//! Docker's shell form of `CMD` arrives as `/bin/sh -c "..."`; the wrapper peels such
//! wrappers off (nested ones too) so that signals reach the real process, and then decides
//! whether the remaining command needs a shell at all.

use crate::config::{ProcessConfig, ShellMode};

/// What to spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run `/bin/sh -c <script>`.
    Shell(String),
    /// Run a program directly; the first element is the program.
    Exec(Vec<String>),
}

impl Command {
    /// The command as one line, for log messages.
    pub fn display(&self) -> String {
        match self {
            Command::Shell(s) => s.clone(),
            Command::Exec(argv) => argv.join(" "),
        }
    }

    /// Program and arguments to pass to the operating system.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["/bin/sh".to_owned(), "-c".to_owned(), s.clone()],
            Command::Exec(argv) => argv.clone(),
        }
    }
}

/// Resolves the command of `config`; `None` when no command was given.
pub fn resolve(config: &ProcessConfig) -> Option<Command> {
    resolve_parts(
        config.command_line.as_deref(),
        &config.command,
        config.shell_mode,
        config.strip_shell_wrapping,
    )
}

/// Resolves a command given as a string (wins) or as a list.
///
/// Differences from 6.0.2, by decision: a list command that runs in a shell is joined into
/// one script (6.0.2 ran only its first element), quoting each element that needs it so it
/// stays one word; `proc_wrapper -- sh -c 'a | b'` therefore runs `a | b` in a shell.
pub(crate) fn resolve_parts(
    command_line: Option<&str>,
    command: &[String],
    shell_mode: ShellMode,
    strip: bool,
) -> Option<Command> {
    let from_line = command_line.is_some_and(|l| !l.trim().is_empty());
    let plain = match command_line {
        Some(line) if from_line => line.to_owned(),
        _ if command.is_empty() => return None,
        _ => command.join(" "),
    };
    // The plain join decides stripping and shell detection, as in the original. For a list,
    // the quoted join is what runs in a shell, and is tried for stripping too, so that
    // `["/bin/sh", "-c", "a | b"]` is peeled to `a | b`.
    let quoted = if from_line {
        None
    } else {
        shlex::try_join(command.iter().map(String::as_str)).ok()
    };
    let mut line = plain.clone();
    let mut stripped = false;
    if strip {
        stripped = strip_all(&mut line);
        if !stripped && let Some(q) = &quoted {
            let mut candidate = q.clone();
            if strip_all(&mut candidate) {
                line = candidate;
                stripped = true;
            }
        }
    }
    let shell = match shell_mode {
        ShellMode::Enable => true,
        ShellMode::Disable => false,
        ShellMode::Auto => stripped || needs_shell(&line),
    };
    if shell && !from_line && !stripped && is_shell_invocation(command) {
        // `sh -c 'a | b'` given as a list is already a shell running a script; wrapping it
        // in another shell would only add a process that signals have to get through.
        return Some(Command::Exec(command.to_vec()));
    }
    if shell {
        let script = match (quoted, command) {
            // One argument holding a whole script (`proc_wrapper 'a | b; exit 3'`, Docker's
            // `CMD ["proc_wrapper", "a | b"]`) runs as that script, as in 6.0.2.
            (Some(_), [only]) if !stripped => only.clone(),
            (Some(q), _) if !stripped => q,
            _ => line,
        };
        return Some(Command::Shell(script));
    }
    if from_line || stripped {
        let argv: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if argv.is_empty() {
            return None;
        }
        Some(Command::Exec(argv))
    } else {
        Some(Command::Exec(command.to_vec()))
    }
}

/// Peels every shell wrapper off `line`; true if there was at least one.
fn strip_all(line: &mut String) -> bool {
    let mut stripped = false;
    while let Some(inner) = strip_one_wrapper(line) {
        *line = inner;
        stripped = true;
    }
    stripped
}

/// If `line` is `<abs path to a shell> -c <one shell word>`, returns the word, unquoted.
///
/// Matches `^\s*(/\w+)*/(ba|c|z|fi|d?a)?sh\s+-c\s+` like the original, then requires the
/// remainder to be exactly one POSIX shell word.
fn strip_one_wrapper(line: &str) -> Option<String> {
    let rest = line.trim_start();
    let after_path = shell_path_len(rest)?;
    let rest = &rest[after_path..];
    let trimmed = rest.trim_start();
    if trimmed.len() == rest.len() {
        return None; // `sh` must be followed by whitespace
    }
    let rest = trimmed.strip_prefix("-c")?;
    let remainder = rest.trim_start();
    if remainder.len() == rest.len() {
        return None; // `-c` must be followed by whitespace
    }
    let mut words = shlex::split(remainder)?;
    (words.len() == 1).then(|| words.remove(0))
}

const SHELLS: [&str; 7] = ["sh", "bash", "csh", "zsh", "fish", "dash", "ash"];

/// `[<shell>, "-c", <script>]`, with the shell named bare or by path.
fn is_shell_invocation(command: &[String]) -> bool {
    match command {
        [program, flag, _script] => {
            let name = program.rsplit('/').next().unwrap_or(program);
            flag == "-c" && SHELLS.contains(&name)
        }
        _ => false,
    }
}

/// Length of a leading absolute path whose last component is a known shell.
fn shell_path_len(s: &str) -> Option<usize> {
    if !s.starts_with('/') {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    let path = &s[..end];
    let mut components = path[1..].split('/');
    let last = components.next_back()?;
    let dirs_ok = components.all(|c| !c.is_empty() && c.chars().all(is_word_char));
    (dirs_ok && SHELLS.contains(&last)).then_some(end)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A command needs a shell if it has any character other than word characters, `-`, `/`,
/// `.` and spaces.
fn needs_shell(line: &str) -> bool {
    line.chars()
        .any(|c| !(is_word_char(c) || matches!(c, '-' | '/' | '.' | ' ')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ShellMode::{Auto, Disable, Enable};

    enum Input {
        List(&'static [&'static str]),
        Line(&'static str),
    }

    fn run(input: &Input, mode: ShellMode, strip: bool) -> Command {
        match input {
            Input::List(list) => {
                let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
                resolve_parts(None, &list, mode, strip)
            }
            Input::Line(line) => resolve_parts(Some(line), &[], mode, strip),
        }
        .expect("UNWRAP: a command is given")
    }

    fn exec(argv: &[&str]) -> Command {
        Command::Exec(argv.iter().map(|s| (*s).to_owned()).collect())
    }

    fn shell(s: &str) -> Command {
        Command::Shell(s.to_owned())
    }

    /// The 21 cases of `test_resolve_command_and_shell_flag` in the original's test suite.
    /// Where the original kept a list for a shell command, we run the joined list (README
    /// "Differences" D6), so those rows expect `Shell(joined)`, with elements quoted where
    /// needed.
    #[test]
    fn the_original_table_of_21_cases() {
        use Input::{Line, List};
        let java: &[&str] = &["java", "-jar", "app.jar"];
        let echo_list: &[&str] = &["echo", "\"hello dude\""];
        let sh_list: &[&str] = &["/bin/sh", "-c", "\"ls -la\""];
        let nested_list: &[&str] = &["/bin/sh", "-c", "\"/bin/sh -c \\\"ls -la\\\"\""];
        let cases: Vec<(Input, ShellMode, bool, Command)> = vec![
            (List(java), Auto, true, exec(java)),
            (List(java), Enable, true, shell("java -jar app.jar")),
            (List(java), Disable, true, exec(java)),
            (Line("java -jar app.jar"), Auto, true, exec(java)),
            (
                Line("java -jar app.jar"),
                Enable,
                true,
                shell("java -jar app.jar"),
            ),
            (Line("java -jar app.jar"), Disable, true, exec(java)),
            (
                Line("echo \"hello dude\""),
                Auto,
                true,
                shell("echo \"hello dude\""),
            ),
            (
                Line("echo \"hello dude\""),
                Disable,
                true,
                exec(&["echo", "\"hello", "dude\""]),
            ),
            (List(echo_list), Auto, true, shell("echo '\"hello dude\"'")),
            (List(echo_list), Disable, true, exec(echo_list)),
            (List(sh_list), Auto, true, shell("ls -la")),
            (List(sh_list), Enable, true, shell("ls -la")),
            (List(sh_list), Disable, true, exec(&["ls", "-la"])),
            (Line("/bin/sh -c \"ls -la\""), Auto, true, shell("ls -la")),
            (Line("/bin/sh -c \"ls -la\""), Enable, true, shell("ls -la")),
            (
                Line("/bin/sh -c \"ls -la\""),
                Disable,
                true,
                exec(&["ls", "-la"]),
            ),
            (Line("/bin/bash -c \"ls -la\""), Auto, true, shell("ls -la")),
            (List(nested_list), Auto, true, shell("ls -la")),
            (
                Line("/bin/sh -c \"/bin/sh -c \\\"ls -la\\\"\""),
                Auto,
                true,
                shell("ls -la"),
            ),
            // A list that already is `<shell> -c <script>` runs as it is: a shell, once.
            (List(sh_list), Auto, false, exec(sh_list)),
            (
                Line("/bin/bash -c \"ls -la\""),
                Auto,
                false,
                shell("/bin/bash -c \"ls -la\""),
            ),
        ];
        assert_eq!(cases.len(), 21);
        for (i, (input, mode, strip, expected)) in cases.iter().enumerate() {
            assert_eq!(&run(input, *mode, *strip), expected, "case {}", i + 1);
        }
    }

    #[test]
    fn bare_sh_and_multi_word_remainders_are_not_stripped() {
        assert_eq!(
            run(&Input::Line("sh -c \"ls -la\""), Auto, true),
            shell("sh -c \"ls -la\"")
        );
        assert_eq!(
            run(&Input::Line("/bin/sh -c ls -la"), Auto, true),
            exec(&["/bin/sh", "-c", "ls", "-la"])
        );
        assert_eq!(
            run(&Input::Line("/usr/local/bin/zsh -c 'a | b'"), Auto, true),
            shell("a | b")
        );
        assert_eq!(
            run(&Input::Line("/bin/bashful -c 'x'"), Auto, true),
            shell("/bin/bashful -c 'x'")
        );
        // An unbalanced quote is left alone rather than guessed at.
        assert_eq!(
            run(&Input::Line("/bin/sh -c \"ls"), Auto, true),
            shell("/bin/sh -c \"ls")
        );
    }

    #[test]
    fn list_commands_keep_their_words_in_a_shell() {
        let list = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let run_list = |l: &[&str], strip| {
            resolve_parts(None, &list(l), Auto, strip).expect("UNWRAP: a command is given")
        };
        assert_eq!(
            run_list(&["sh", "-c", "a | b"], true),
            exec(&["sh", "-c", "a | b"])
        );
        assert_eq!(
            run_list(&["sh", "-c", "a | b"], false),
            exec(&["sh", "-c", "a | b"])
        );
        assert_eq!(
            run_list(&["env", "sh", "-c", "a | b"], true),
            shell("env sh -c 'a | b'")
        );
        assert_eq!(run_list(&["/bin/sh", "-c", "a | b"], true), shell("a | b"));
        assert_eq!(
            run_list(&["/bin/sh", "-c", "ls -la"], true),
            shell("ls -la")
        );
        assert_eq!(
            run_list(&["echo", "hello dude"], true),
            exec(&["echo", "hello dude"])
        );
    }

    #[test]
    fn one_argument_holding_a_script_runs_as_that_script() {
        const SCRIPT: &str = "echo x | tr a-z A-Z; exit 3";
        let list: &[&str] = &[SCRIPT];
        assert_eq!(run(&Input::List(list), Auto, true), shell(SCRIPT));
        assert_eq!(run(&Input::List(list), Enable, true), shell(SCRIPT));
        assert_eq!(run(&Input::List(list), Disable, true), exec(list));
        // Without anything for a shell, one argument is a program name, as in 6.0.2.
        assert_eq!(run(&Input::List(&["true"]), Auto, true), exec(&["true"]));
    }

    #[test]
    fn no_command_is_none() {
        assert_eq!(resolve_parts(None, &[], Auto, true), None);
        assert_eq!(resolve_parts(Some("  "), &[], Auto, true), None);
    }

    #[test]
    fn shell_commands_run_through_bin_sh() {
        assert_eq!(shell("a | b").argv(), ["/bin/sh", "-c", "a | b"]);
    }
}
