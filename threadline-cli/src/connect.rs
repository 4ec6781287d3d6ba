//! Connecting to the database: every database command first opens one connection within
//! `--connect-timeout`, so an unreachable server is reported in seconds with its real cause
//! (refused, unknown host, authentication, missing database) and the fix.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::cli::DatabaseArgs;

/// Seconds `--connect-timeout` allows by default.
pub(crate) const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;

/// Where the URL comes from, for the fixes.
const URL_SOURCE: &str = "--database-url / DATABASE_URL";

/// Why no connection could be opened. Each message names the cause and the fix; none shows
/// the URL (it may hold a password).
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// Neither `--database-url` nor `DATABASE_URL` was given.
    NoUrl,
    /// The URL does not parse.
    BadUrl {
        /// The parser's reason.
        reason: String,
    },
    /// Nothing listens at the address (the OS refused the connection).
    Refused {
        /// `host:port`, or the socket directory.
        at: String,
        /// The OS's message.
        reason: String,
    },
    /// The host name does not resolve.
    UnknownHost {
        /// The host name.
        host: String,
        /// The resolver's message.
        reason: String,
    },
    /// The server rejected the role or its password (SQLSTATE class 28).
    Authentication {
        /// The role in the URL.
        role: String,
        /// `host:port`, or the socket directory.
        at: String,
        /// The server's message.
        reason: String,
    },
    /// The server has no such database (SQLSTATE 3D000).
    NoDatabase {
        /// The database in the URL.
        database: String,
        /// `host:port`, or the socket directory.
        at: String,
    },
    /// No answer within the connect timeout.
    TimedOut {
        /// `host:port`, or the socket directory.
        at: String,
        /// The timeout in seconds.
        seconds: u64,
    },
    /// Anything else, with the server's or the driver's message.
    Other {
        /// `host:port`, or the socket directory.
        at: String,
        /// The message.
        reason: String,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoUrl => write!(
                f,
                "no database given: pass --database-url postgres://user@host/db or set DATABASE_URL"
            ),
            Self::BadUrl { reason } => write!(
                f,
                "invalid {URL_SOURCE}: {reason}; expected postgres://user[:password]@host[:port]/database"
            ),
            Self::Refused { at, reason } => write!(
                f,
                "cannot connect to PostgreSQL at {at}: {reason}; is PostgreSQL running on {at}? Start it, or fix the host and port in {URL_SOURCE}"
            ),
            Self::UnknownHost { host, reason } => write!(
                f,
                "cannot connect to PostgreSQL: unknown host {host} ({reason}); fix the host name in {URL_SOURCE}"
            ),
            Self::Authentication { role, at, reason } => write!(
                f,
                "cannot connect to PostgreSQL at {at}: authentication failed for role {role} ({reason}); fix the user name and password in {URL_SOURCE}, or let the role log in (CREATE ROLE / ALTER ROLE ... LOGIN, pg_hba.conf)"
            ),
            Self::NoDatabase { database, at } => write!(
                f,
                "cannot connect to PostgreSQL at {at}: database {database} does not exist: create it (CREATE DATABASE {}) or fix the URL in {URL_SOURCE}",
                threadline_core::quote_ident(database)
            ),
            Self::TimedOut { at, seconds } => write!(
                f,
                "cannot connect to PostgreSQL at {at}: no answer within {seconds} s; check the host, the port and any firewall in between, or wait longer with --connect-timeout SECONDS (THREADLINE_CONNECT_TIMEOUT)"
            ),
            Self::Other { at, reason } => write!(
                f,
                "cannot connect to PostgreSQL at {at}: {reason}; check that PostgreSQL is running and {URL_SOURCE} is right"
            ),
        }
    }
}

impl std::error::Error for ConnectError {}

/// A parsed URL with the connect timeout.
struct Target {
    options: PgConnectOptions,
    timeout: Duration,
    seconds: u64,
    at: String,
}

impl Target {
    fn of(db: &DatabaseArgs) -> Result<Self, ConnectError> {
        let url = db.database_url.as_deref().ok_or(ConnectError::NoUrl)?;
        let options = PgConnectOptions::from_str(url).map_err(|e| ConnectError::BadUrl {
            reason: match e {
                sqlx::Error::Configuration(inner) => inner.to_string(),
                other => other.to_string(),
            },
        })?;
        let at = match options.get_socket() {
            Some(dir) => format!("the socket in {}", dir.display()),
            None if options.get_host().contains(':') => {
                format!("[{}]:{}", options.get_host(), options.get_port())
            }
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        Ok(Self {
            options,
            timeout: Duration::from_secs(db.connect_timeout),
            seconds: db.connect_timeout,
            at,
        })
    }

    /// Resolves the host, then opens one connection, all within the timeout.
    async fn connect(&self) -> Result<PgConnection, ConnectError> {
        let attempt = async {
            if self.options.get_socket().is_none() {
                let host = self.options.get_host();
                tokio::net::lookup_host((host, self.options.get_port()))
                    .await
                    .map(drop)
                    .map_err(|e| ConnectError::UnknownHost {
                        host: host.to_owned(),
                        reason: e.to_string(),
                    })?;
            }
            self.options.connect().await.map_err(|e| self.classify(e))
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(ConnectError::TimedOut {
                    at: self.at.clone(),
                    seconds: self.seconds,
                })
            })
    }

    fn classify(&self, err: sqlx::Error) -> ConnectError {
        let at = self.at.clone();
        match err {
            sqlx::Error::Io(e)
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    || (self.options.get_socket().is_some()
                        && e.kind() == std::io::ErrorKind::NotFound) =>
            {
                ConnectError::Refused {
                    at,
                    reason: e.to_string(),
                }
            }
            sqlx::Error::Database(e) => match e.code().as_deref() {
                // invalid_authorization_specification (unknown role, role without LOGIN,
                // no pg_hba.conf entry) and invalid_password.
                Some("28000" | "28P01") => ConnectError::Authentication {
                    role: self.options.get_username().to_owned(),
                    at,
                    reason: e.message().to_owned(),
                },
                Some("3D000") => ConnectError::NoDatabase {
                    database: self
                        .options
                        .get_database()
                        .unwrap_or(self.options.get_username())
                        .to_owned(),
                    at,
                },
                _ => ConnectError::Other {
                    at,
                    reason: e.message().to_owned(),
                },
            },
            other => ConnectError::Other {
                at,
                reason: other.to_string(),
            },
        }
    }
}

/// Opens one connection for a command.
pub(crate) async fn connection(db: &DatabaseArgs) -> Result<PgConnection, ConnectError> {
    Target::of(db)?.connect().await
}

/// A small pool for a command that runs several statements, opened after one connection
/// succeeded within the timeout (so an unreachable server fails fast, with its cause).
pub(crate) async fn pool(db: &DatabaseArgs) -> anyhow::Result<PgPool> {
    let target = Target::of(db)?;
    let probe = target.connect().await?;
    let _ = probe.close().await;
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(target.options.clone())
        .await
        .map_err(|e| target.classify(e).into())
}
