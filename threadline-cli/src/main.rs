//! The `threadline` command.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = threadline_cli::Cli::parse();
    tokio::select! {
        result = threadline_cli::run(cli) => match result {
            Ok(code) => code,
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        },
        // The command's future is dropped here, which removes a file it was still writing
        // (output files are written to a temporary file and renamed when complete).
        (name, code) = interrupted() => {
            eprintln!(
                "error: interrupted by {name}; the file being written (if any) was removed, \
                 and database work already committed stays"
            );
            ExitCode::from(code)
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM, with the signal's name and the usual
/// exit code (128 + signal number). Never resolves when no handler can be installed.
async fn interrupted() -> (&'static str, u8) {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                () = ctrl_c => ("SIGINT", 130),
                _ = term.recv() => ("SIGTERM", 143),
            };
        }
    }
    ctrl_c.await;
    ("SIGINT", 130)
}
