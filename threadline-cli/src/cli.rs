//! Command-line definitions (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Threadline: audit trails for PostgreSQL, captured by triggers.
#[derive(Debug, Parser)]
#[command(name = "threadline", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the install migration (audit tables, indexes, functions).
    Install(InstallArgs),
    /// Generate capture triggers for tables, with redaction from threadline.toml.
    GenTriggers(GenTriggersArgs),
}

/// Where to find the database.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://user@localhost/app.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// `threadline install`.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Directory for sqlx migration files.
    #[arg(long, default_value = "migrations")]
    pub migrations_dir: PathBuf,
    /// Schema for the audit tables (default: `schema` from the config file, else public).
    #[arg(long)]
    pub schema: Option<String>,
    /// Print the SQL instead of writing a migration file.
    #[arg(long)]
    pub stdout: bool,
    /// Configuration file.
    #[arg(long, default_value = "threadline.toml")]
    pub config: PathBuf,
}

/// `threadline gen-triggers`.
#[derive(Debug, Clone, Args)]
pub struct GenTriggersArgs {
    /// Tables to audit, comma separated (`posts,billing.invoices`, quote mixed case: `"Users"`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub tables: Vec<String>,
    /// Store prior values of changed columns (`changed_from`) for these tables.
    #[arg(long)]
    pub store_changed_from: bool,
    /// Columns ignored by change detection, comma separated (added to the config's lists).
    #[arg(long, value_delimiter = ',')]
    pub except_columns: Vec<String>,
    /// Configuration file.
    #[arg(long, default_value = "threadline.toml")]
    pub config: PathBuf,
    /// Schema for the audit tables (default: `schema` from the config file, else public).
    #[arg(long)]
    pub schema: Option<String>,
    /// Database connection (reads primary keys and checks column names).
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Print one line per table with the resolved policy, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the SQL instead of writing a migration file.
    #[arg(long)]
    pub stdout: bool,
    /// Directory for sqlx migration files.
    #[arg(long, default_value = "migrations")]
    pub migrations_dir: PathBuf,
}
