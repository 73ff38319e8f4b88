//! The bank over HTTP: accounts as aggregates, a queryable and watchable read model,
//! served by axum (see `foldkit_examples::bank_http` for the endpoints).
//!
//! `cargo run --release --example bank_http -- --data-dir ./bank-data --addr 127.0.0.1:3000`
//! (or `FOLDKIT_DATA_DIR` / `FOLDKIT_ADDR`); `--postgres URL` (`FOLDKIT_POSTGRES`) keeps
//! the events in PostgreSQL, so several instances can serve one bank. Ctrl-C (or SIGTERM) stops it gracefully:
//! open watch streams end, in-flight requests finish, then the Db closes (fsync and
//! snapshot), so the next start resumes where this one stopped.

use std::process::ExitCode;

use foldkit_examples::bank_http::{AppState, Config, USAGE, install_metrics, open_configured};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::parse(std::env::args_os().skip(1), |key| std::env::var_os(key)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    foldkit_examples::report(serve(config).await)
}

async fn serve(config: Config) -> Result<(), Error> {
    // Logs: `RUST_LOG=debug` shows every request and snapshot; `info` (the
    // default) only the start-up and what needs attention.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let metrics = install_metrics()?;
    let db = open_configured(&config).await?;
    let app = AppState::new(db.clone()).with_metrics(metrics);
    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            // Release the directory before reporting (`close` fsyncs what is there).
            db.close().await?;
            return Err(format!("cannot listen on {}: {e}", config.addr).into());
        }
    };
    println!(
        "bank_http: listening on http://{} (data in {})",
        listener.local_addr()?,
        db.store().describe()
    );
    let stop = app.clone();
    let served = axum::serve(listener, app.router())
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            println!("bank_http: shutting down");
            stop.shutdown();
        })
        .await;
    // Close the Db even if the server failed: everything acknowledged is made durable.
    let closed = db.close().await;
    served?;
    closed?;
    println!("bank_http: closed");
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("bank_http: cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                eprintln!("bank_http: cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
