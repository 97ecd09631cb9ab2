//! `cloudreactor-extension`: the Lambda extension (no arguments), the exec wrapper
//! (`--exec COMMAND...`, used by `/opt/cloudreactor-exec-wrapper`), the layer's bootstrap
//! (`--bootstrap`), or the extension's Runtime API proxy process (`--runtime-api-proxy`,
//! started by the extension itself).

use std::ffi::OsString;

use proc_wrapper::config::{Args, Config, LogFormat, LogLevel};

const USAGE: &str = "\
Usage: cloudreactor-extension            run as an AWS Lambda extension (from /opt/extensions)
       cloudreactor-extension --exec COMMAND [ARGS...]
                                         resolve secret locations in the environment, then
                                         replace this process with COMMAND
       cloudreactor-extension --bootstrap
                                         the same for the function's executable: the
                                         command in PROC_WRAPPER_LAMBDA_BOOTSTRAP_COMMAND, or
                                         _HANDLER in LAMBDA_TASK_ROOT (/opt/bootstrap of the
                                         layer, for OS-only runtimes)
       cloudreactor-extension --version

Settings come from the PROC_WRAPPER_* environment variables; see the README.
(--runtime-api-proxy is internal: the extension runs its Runtime API proxy that way.)";

fn main() {
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let config = Config::from_sources(&Args::default(), &|k| std::env::var(k).ok());
    let (level, timestamps, format) = match &config {
        Ok(c) => (c.log.level, c.log.include_timestamps, c.log.format),
        Err(_) => (LogLevel::Info, true, LogFormat::from_env()),
    };
    proc_wrapper::logging::init_with_format(level, timestamps, format);
    let mut args = std::env::args_os().skip(1);
    let first = args.next();
    if first.as_deref() == Some(cloudreactor_extension::proxy::process::ARG.as_ref()) {
        // The proxy's own process, started by the extension (which already said what is
        // wrong with the settings).
        let upstream = args.next().unwrap_or_default();
        std::process::exit(cloudreactor_extension::proxy::process::run(
            &upstream.to_string_lossy(),
        ));
    }
    if let Err(e) = &config {
        tracing::warn!("{e}");
    }
    let (exec, bootstrap) = match first.as_ref().map(|a| a.to_string_lossy()).as_deref() {
        None => (false, false),
        Some("--exec") => (true, false),
        Some("--bootstrap") => (true, true),
        Some("-v" | "--version") => {
            println!("cloudreactor-extension v{}", proc_wrapper::VERSION);
            return;
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return;
        }
        Some(other) => {
            eprintln!("cloudreactor-extension: unknown argument '{other}'\n\n{USAGE}");
            std::process::exit(proc_wrapper::exit_codes::CONFIGURATION_ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cloudreactor-extension: could not start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = if exec {
        let mut command: Vec<OsString> = args.collect();
        if command.first().is_some_and(|a| a == "--") {
            command.remove(0);
        }
        if bootstrap {
            match cloudreactor_extension::bootstrap::command(&|k| std::env::var(k).ok()) {
                // Arguments given to the bootstrap follow the command's own.
                Ok(mut handler) => {
                    handler.append(&mut command);
                    command = handler;
                }
                Err(e) => {
                    tracing::error!("{e}");
                    std::process::exit(proc_wrapper::exit_codes::CONFIGURATION_ERROR);
                }
            }
        }
        let mut env = env;
        runtime.block_on(cloudreactor_extension::proxy::route_runtime(&mut env));
        match runtime.block_on(proc_wrapper::exec::resolve_and_exec(&command, env)) {
            Ok(never) => match never {},
            Err(e) => {
                tracing::error!("{e}");
                e.exit_code()
            }
        }
    } else {
        let text = env
            .into_iter()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        runtime.block_on(cloudreactor_extension::run(text))
    };
    std::process::exit(code);
}
