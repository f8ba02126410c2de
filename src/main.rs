//! The `formbridge` binary: parses the command line and runs the chosen subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use formbridge::app::Application;
use formbridge::settings::{ConfigSource, Settings};
use formbridge::telemetry;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let source = ConfigSource::from_process_env(cli.config_dir.clone());
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
    runtime.block_on(run(cli.command.unwrap_or(Command::Serve), settings, source))
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
    }
}

async fn serve(settings: Settings) -> ExitCode {
    telemetry::init_tracing(&settings.telemetry);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("formbridge: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("formbridge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
