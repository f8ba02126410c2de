//! The `formbridge` binary: parses the command line and runs the chosen subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use formbridge::app::Application;
use formbridge::cli::{self, EventsCommand};
use formbridge::cli_compare::{self, CompareArgs};
#[cfg(feature = "sandbox")]
use formbridge::demo::{self, DemoOptions};
use formbridge::dispatch::preview;
use formbridge::playground::Selection;
use formbridge::runtime::SourceRuntimes;
use formbridge::settings::{ConfigSource, Settings};
use formbridge::telemetry;
use time::OffsetDateTime;

/// mimalloc (its v2 line, which hands freed memory back after 10 ms) instead of glibc's
/// allocator: 4–11 % less CPU per delivery and per GHL request, the same memory (BENCHMARKS.md,
/// "Session 14: the allocator and the release profile").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Durable webhook server: form and chat submissions into GoHighLevel.
#[derive(Debug, Parser)]
#[command(name = "formbridge", version, about)]
struct Cli {
    /// Folder with default.toml and {FORMBRIDGE_ENV}.toml.
    #[arg(long, global = true, env = "FORMBRIDGE_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook server and the dispatcher (the default).
    Serve,
    /// Validate the configuration and print it with secrets masked.
    CheckConfig,
    /// Ask the server running on this machine (at `server.addr`) for its health; exit 0 when it
    /// answers 2xx, 1 otherwise (a container HEALTHCHECK without curl).
    Healthcheck {
        /// Endpoint to ask: /readyz (the store answers) or /healthz (the process is up).
        #[arg(long, default_value = "/readyz")]
        path: String,
    },
    /// Show what a saved delivery turns into (normalized submission and GHL plan), offline;
    /// or, with --compare, a candidate mapping file against the running mapping over stored
    /// deliveries (exit 3: the candidate has configuration problems; 4: it breaks a delivery
    /// the running mapping handles).
    Map {
        /// Source name, as in /hooks/{source}.
        #[arg(long)]
        source: String,
        /// File holding the raw body (a `<file>.meta` beside it may name the Content-Type).
        #[arg(long, required_unless_present = "compare", conflicts_with = "compare")]
        file: Option<PathBuf>,
        /// Content-Type of the body (default: from the .meta file, else sniffed).
        #[arg(long, requires = "file")]
        content_type: Option<String>,
        /// A mapping file (`[sources.<name>.mapping]` TOML) to compare with the running
        /// mapping over the stored deliveries of `store.url`.
        #[arg(long, value_name = "FILE")]
        compare: Option<PathBuf>,
        /// Compare over the newest N deliveries of the source (1 to 500).
        #[arg(long, default_value_t = 50, requires = "compare")]
        last: u32,
        /// Only the source's dead letters (the newest --last of them).
        #[arg(long, requires = "compare", conflicts_with = "ids")]
        dead: bool,
        /// Only these event ids (comma-separated).
        #[arg(long, requires = "compare", value_delimiter = ',')]
        ids: Vec<i64>,
        /// Print the comparison as JSON.
        #[arg(long, requires = "compare")]
        json: bool,
    },
    /// Inspect and replay stored events (opens the store directly; the server may be running).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Run the built-in GHL sandbox (a faithful fake of the GHL contacts API) until ctrl-c.
    #[cfg(feature = "sandbox")]
    SandboxGhl {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: std::net::SocketAddr,
    },
    /// Show the whole job with no GHL account: real deliveries through formbridge into the
    /// built-in GHL sandbox, then a report of what each became.
    #[cfg(feature = "sandbox")]
    Demo {
        /// Keep the demo's SQLite store in this folder (default: a temporary folder, removed).
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // mimalloc reserves memory in large aligned regions. Backed by transparent huge pages they
    // cost idle RSS for no speed: 29 MB instead of 19 when mimalloc asked for them (measured;
    // the `no_thp` feature stops it asking). Under `transparent_hugepage=always` the kernel
    // would use them unasked, so the process opts out. Best effort: a kernel without the
    // setting changes nothing.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    #[cfg(feature = "sandbox")]
    if let Some(Command::SandboxGhl { addr }) = cli.command {
        // The sandbox needs no configuration.
        return match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(async { cli::sandbox_ghl(addr, shutdown_signal()).await }),
            Err(e) => {
                eprintln!("formbridge: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let source = ConfigSource::from_process_env(cli.config_dir.clone());
    #[cfg(feature = "sandbox")]
    if let Some(Command::Demo { keep, json }) = cli.command {
        // The demo loads the configuration itself, with its own overrides.
        return match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(run_demo(source, keep, json)),
            Err(e) => {
                eprintln!("formbridge: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let settings = match Settings::load(&source, &[]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("formbridge: configuration refused: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("formbridge: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if matches!(command, Command::Serve | Command::CheckConfig) {
        // What `serve` would open to the network: check-config says it too.
        if let Err(e) = settings.refuse_public_development_secrets(&source) {
            eprintln!("formbridge: configuration refused: {e}");
            return ExitCode::from(2);
        }
    }
    runtime.block_on(run(command, settings, source))
}

async fn run(command: Command, settings: Settings, source: ConfigSource) -> ExitCode {
    match command {
        Command::Serve => serve(settings).await,
        Command::CheckConfig => {
            let masked = settings.to_masked_json();
            println!(
                "# effective configuration (env `{}`, dir `{}`; secrets masked)",
                source.env,
                source.dir.display()
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&masked).unwrap_or_default()
            );
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Command::Healthcheck { path } => {
            formbridge::healthcheck::run(&formbridge::healthcheck::target(&settings, &path)).await
        }
        Command::Map {
            source,
            file,
            content_type,
            compare,
            last,
            dead,
            ids,
            json,
        } => match (compare, file) {
            (Some(compare), _) => {
                let selection = if !ids.is_empty() {
                    Selection::Ids(ids)
                } else if dead {
                    Selection::Dead(last)
                } else {
                    Selection::Last(last)
                };
                let args = CompareArgs {
                    file: &compare,
                    source: &source,
                    selection,
                    json,
                };
                cli_compare::run(&settings, args).await
            }
            (None, Some(file)) => map_file(&settings, &source, &file, content_type),
            (None, None) => {
                eprintln!("formbridge map: give --file or --compare");
                ExitCode::from(2)
            }
        },
        Command::Events { command } => cli::run_events(command, &settings).await,
        // Handled before the settings are loaded.
        #[cfg(feature = "sandbox")]
        Command::SandboxGhl { addr } => cli::sandbox_ghl(addr, shutdown_signal()).await,
        #[cfg(feature = "sandbox")]
        Command::Demo { keep, json } => run_demo(source, keep, json).await,
    }
}

#[cfg(feature = "sandbox")]
async fn run_demo(config: ConfigSource, keep: Option<PathBuf>, json: bool) -> ExitCode {
    demo::run(DemoOptions { config, keep, json }, shutdown_signal()).await
}

fn map_file(
    settings: &Settings,
    source: &str,
    file: &std::path::Path,
    content_type: Option<String>,
) -> ExitCode {
    let runtimes = match SourceRuntimes::compile(settings) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("formbridge map: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtimes.get(source) else {
        eprintln!("formbridge map: no [sources.{source}] in the configuration");
        return ExitCode::from(2);
    };
    let body = match std::fs::read(file) {
        Ok(b) => bytes::Bytes::from(b),
        Err(e) => {
            eprintln!("formbridge map: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let content_type = content_type.or_else(|| preview::content_type_for_file(file, &body));
    match preview::preview(
        runtime,
        &settings.server.body_limits(),
        content_type.as_deref(),
        &body,
        OffsetDateTime::now_utc(),
    ) {
        Ok(p) => {
            println!("{p}");
            if p.mapping_error.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("formbridge map: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    // Before anything is bound: from here on SIGTERM means a graceful stop.
    let shutdown = shutdown_signal();
    telemetry::init_tracing(&settings.telemetry);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("formbridge: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("formbridge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on ctrl-c or SIGTERM. The handlers are installed when this is called (inside the
/// runtime), not when the future is first polled, so a SIGTERM that arrives right after the
/// server starts listening stops it gracefully instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let terminate = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(terminate) => {},
                () = wait(interrupt) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
