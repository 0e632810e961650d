//! The `wharf` binary: parses the command line and hands over to the library — the service
//! for `serve`, the HTTP client for everything else.

use std::process::ExitCode;

use wharf::cli::Command;

#[tokio::main]
async fn main() -> ExitCode {
    wharf::install_crypto_provider();
    let cli = wharf::cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        wharf::cli::die_quietly_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Completion(args) => {
            args.print();
            Ok(())
        }
        command => wharf::cli::run_client(&cli.global, command).await.map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wharf: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: wharf::cli::ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    wharf::logging::init(&config.log);
    let listener = wharf::server::bind(&config).await?;
    wharf::server::run(config, listener, shutdown_signal()).await?;
    tracing::info!("wharf stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
