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
                eprintln!("error: {}", report(&err));
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

/// The error and its causes on one line, `error: cause: root cause`, each shown once. Threadline's
/// errors leave their cause out of their own message; a cause that its wrapper's message already
/// ends with (as sqlx's `error returned from database: <message>` does) is skipped.
fn report(err: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut last = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if !last.is_empty() && last.ends_with(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
        last = message;
    }
    text
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

#[cfg(test)]
mod tests {
    use super::report;

    use std::fmt;

    /// Like sqlx's `Database` error: the cause is both in the message and the `source()`.
    #[derive(Debug)]
    struct Repeats(Root);

    impl fmt::Display for Repeats {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "error returned from database: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[derive(Debug)]
    struct Root;

    impl fmt::Display for Root {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("permission denied for table audit_changes")
        }
    }

    impl std::error::Error for Root {}

    #[test]
    fn reports_show_each_cause_once() {
        let err = anyhow::Error::new(Repeats(Root)).context("cannot install");
        assert_eq!(
            report(&err),
            "cannot install: error returned from database: permission denied for table audit_changes"
        );
        let err = anyhow::Error::new(Root).context("cannot install");
        assert_eq!(
            report(&err),
            "cannot install: permission denied for table audit_changes"
        );
    }
}
