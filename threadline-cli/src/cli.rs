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
    /// Retention: purge changes older than the `[retention]` policy.
    Retention(RetentionArgs),
    /// Check that every table in `[coverage] expected_tables` (or, with --all, of a schema) is
    /// captured (exit 1 if not).
    VerifyCoverage(VerifyCoverageArgs),
    /// Check the install, indexes, coverage, replica mode, privileges and orphan changes;
    /// print each finding with its fix (exit 1 on errors).
    Doctor(DoctorArgs),
    /// Brownfield cutover: print the steps, or check that a table is capture-ready.
    Continuity(ContinuityArgs),
    /// Record every existing row of a table as an `op = 'snapshot'` change (a baseline).
    Snapshot(SnapshotArgs),
    /// Export changes (with their transaction and actions) as CSV, JSON or NDJSON.
    Export(ExportArgs),
    /// The partitioned layout: create partitions ahead of time, list them.
    Partitions(PartitionsArgs),
    /// Archive the partitions (or, on a plain trail, calendar months) wholly before a date
    /// to verified Parquet or NDJSON files with a manifest; --drop then drops the partitions.
    Archive(ArchiveArgs),
    /// The reporting node: print the logical replication SQL that keeps the whole trail on a
    /// second PostgreSQL while the primary purges.
    Replication(ReplicationArgs),
    /// Undo a change, a transaction, a correlation id or a request id: print the plan, or
    /// apply it with --execute (exit 0 applied or clean, 1 conflicts, 2 bad input).
    Revert(RevertArgs),
    /// Append a seal (a SHA-256 hash chain link) over every finished transaction since the
    /// last seal. Safe from cron: a concurrent run does nothing.
    Seal(SealArgs),
    /// Recompute the seal chain and every retained seal's content: exit 0 printing the head
    /// hash and counts, 1 naming the first modified, deleted or inserted row or broken link.
    VerifySeals(VerifySealsArgs),
    /// Erase one row's personal data from every captured image (right to erasure): print
    /// the plan, or apply it with --execute. The erasure is recorded, never the values.
    Erase(EraseArgs),
}

/// `threadline seal`.
#[derive(Debug, Clone, Args)]
pub struct SealArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
}

/// `threadline verify-seals`.
#[derive(Debug, Clone, Args)]
pub struct VerifySealsArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Check the content of seals from this one on (the chain links from it on too).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub from_seal: Option<i64>,
    /// Print only the head seal's hash (after verifying), for anchoring it elsewhere.
    #[arg(long)]
    pub head: bool,
}

/// `threadline erase`.
#[derive(Debug, Clone, Args)]
pub struct EraseArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The table whose row is erased (`users`, `billing.customers`).
    #[arg(long)]
    pub table: String,
    /// The row's key: the value for a one-column key (`--pk 42`), or a JSON object of every
    /// key column (`--pk '{"tenant":1,"id":42}'`).
    #[arg(long, value_name = "KEY")]
    pub pk: String,
    /// Columns to erase, comma separated (default: every column except the key).
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Why (e.g. the request's reference); recorded with the erasure.
    #[arg(long)]
    pub reason: String,
    /// Who erases, as `kind:id` (e.g. `admin:7`).
    #[arg(long, value_name = "KIND:ID")]
    pub actor: String,
    /// Apply the erasure. Without it the plan is printed and nothing changes.
    #[arg(long)]
    pub execute: bool,
}

/// Partition intervals on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IntervalArg {
    /// One UTC day per partition.
    Day,
    /// One ISO week (Monday to Monday, UTC) per partition.
    Week,
    /// One calendar month (UTC) per partition.
    Month,
}

impl From<IntervalArg> for threadline_core::partition::PartitionInterval {
    fn from(i: IntervalArg) -> Self {
        match i {
            IntervalArg::Day => Self::Day,
            IntervalArg::Week => Self::Week,
            IntervalArg::Month => Self::Month,
        }
    }
}

/// `threadline partitions`.
#[derive(Debug, Clone, Args)]
pub struct PartitionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PartitionsCommand,
}

/// `threadline partitions` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum PartitionsCommand {
    /// Create the partitions from now to now + N intervals and move rows that landed in
    /// DEFAULT into their own partitions. Idempotent; safe to run concurrently (cron).
    Ensure(EnsureArgs),
    /// List the partitions of both audit tables with range, rows and bytes.
    List(ListPartitionsArgs),
    /// Convert a plain trail to the partitioned layout without rewriting it: each old table
    /// becomes one partition of its time range. Prints the plan; --execute applies it.
    Convert(ConvertArgs),
}

/// `threadline replication`.
#[derive(Debug, Clone, Args)]
pub struct ReplicationArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ReplicationCommand,
}

/// `threadline replication` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ReplicationCommand {
    /// Print the publication (primary), the audit schema and the subscription (reporting
    /// node) SQL; nothing is run.
    Sql(ReplicationSqlArgs),
}

/// `threadline replication sql`.
#[derive(Debug, Clone, Args)]
pub struct ReplicationSqlArgs {
    /// Schema of the audit tables (default: `schema` from the config file, else public).
    #[arg(long)]
    pub schema: Option<String>,
    /// Configuration file.
    #[arg(long, default_value = "threadline.toml")]
    pub config: PathBuf,
    /// Name of the publication on the primary.
    #[arg(long, default_value = "threadline_audit")]
    pub publication: String,
    /// Name of the subscription on the reporting node (also its replication slot's name on
    /// the primary).
    #[arg(long, default_value = "threadline_audit")]
    pub subscription: String,
    /// How the reporting node connects to the primary (a libpq connection string, e.g.
    /// `host=db1 dbname=app user=replicator`; the role needs REPLICATION and SELECT on the
    /// audit tables).
    #[arg(long, value_name = "CONNINFO")]
    pub primary_conninfo: String,
}

/// Archive file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ArchiveFormatArg {
    /// Apache Parquet, zstd-compressed (the default).
    #[default]
    Parquet,
    /// Newline-delimited JSON, one row per line.
    Ndjson,
}

/// `threadline archive`.
#[derive(Debug, Clone, Args)]
pub struct ArchiveArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The cutoff: a date (its start, UTC) or an RFC 3339 time. Whole partitions (or
    /// months) ending at or before it are archived.
    #[arg(long, value_name = "DATE")]
    pub before: String,
    /// The archive folder (created when missing); `manifest.json` there lists every file.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ArchiveFormatArg,
    /// After every file verified, detach and drop the archived partitions (partitioned
    /// layout only; a transaction partition stays while later changes need it).
    #[arg(long)]
    pub drop: bool,
    /// Seconds each drop waits for its lock before giving up (the partition is kept then).
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lock_timeout: u64,
}

/// `threadline partitions convert`.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Partition interval (default: `interval` under `[storage]` in the config file, else
    /// month).
    #[arg(long, value_enum)]
    pub interval: Option<IntervalArg>,
    /// Future partitions to make after the switch (default: `premake` under `[storage]`,
    /// else 3).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=i64::from(threadline_core::partition::MAX_PREMAKE)))]
    pub premake: Option<u32>,
    /// Seconds each locking step waits for its lock before giving up (nothing is switched
    /// then).
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lock_timeout: u64,
    /// Apply the plan. Without it the plan is printed and nothing changes.
    #[arg(long)]
    pub execute: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ReportFormat,
}

/// `threadline partitions ensure`.
#[derive(Debug, Clone, Args)]
pub struct EnsureArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Future partitions to keep ready after the current one (default: `premake` under
    /// `[storage]` in the config file, else 3).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=i64::from(threadline_core::partition::MAX_PREMAKE)))]
    pub premake: Option<u32>,
    /// Seconds each step waits for a table lock before giving up (nothing is changed then).
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lock_timeout: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ReportFormat,
}

/// `threadline partitions list`.
#[derive(Debug, Clone, Args)]
pub struct ListPartitionsArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ReportFormat,
}

/// `threadline revert`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(false)
    .args(["change", "transaction", "correlation_id", "request_id"])))]
pub struct RevertArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Revert one change (`audit_changes.id`).
    #[arg(long, value_name = "ID")]
    pub change: Option<i64>,
    /// Revert every change of one transaction (`audit_transactions.id`).
    #[arg(long, value_name = "ID")]
    pub transaction: Option<i64>,
    /// Revert every change of the transactions with this correlation id.
    #[arg(long, value_name = "ID")]
    pub correlation_id: Option<String>,
    /// Revert every change of the transactions with this request id.
    #[arg(long, value_name = "ID")]
    pub request_id: Option<String>,
    /// Who reverts, as `kind:id` (e.g. `admin:7`); the revert is captured under this actor.
    #[arg(long, value_name = "KIND:ID")]
    pub actor: String,
    /// Revert the rows that can be reverted and list the conflicting ones, instead of
    /// refusing the whole revert.
    #[arg(long)]
    pub skip_conflicts: bool,
    /// Apply the revert. Without it the plan is printed and nothing changes.
    #[arg(long)]
    pub execute: bool,
}

/// Where to find the database.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL, e.g. postgres://user@localhost/app.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Seconds to wait for the first connection (name lookup, TCP, TLS, authentication)
    /// before giving up with the cause.
    #[arg(long, value_name = "SECONDS", env = "THREADLINE_CONNECT_TIMEOUT",
          default_value_t = crate::connect::DEFAULT_CONNECT_TIMEOUT_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub connect_timeout: u64,
}

/// Options shared by the commands that work on a database.
#[derive(Debug, Clone, Args)]
pub struct OpsArgs {
    /// Database connection.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Configuration file.
    #[arg(long, default_value = "threadline.toml")]
    pub config: PathBuf,
    /// Schema of the audit tables (default: `schema` from the config file, else public).
    #[arg(long)]
    pub schema: Option<String>,
}

/// Output format of the checking commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFormat {
    /// An aligned table and a summary line.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// `threadline verify-coverage`.
#[derive(Debug, Clone, Args)]
pub struct VerifyCoverageArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Also expect every table of a schema (`--in-schema`, default public) to be captured.
    #[arg(long)]
    pub all: bool,
    /// With --all: the schema whose tables must be captured (default public).
    #[arg(long, requires = "all")]
    pub in_schema: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ReportFormat,
}

/// `threadline doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The role the application connects as, for the privilege check (default: the role in
    /// the database URL).
    #[arg(long)]
    pub app_role: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ReportFormat,
}

/// `threadline continuity`.
#[derive(Debug, Clone, Args)]
pub struct ContinuityArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Print the cutover steps only (no database needed).
    #[arg(long)]
    pub dry_run: bool,
    /// Check that this table exists and its capture is installed, enabled and current.
    #[arg(long)]
    pub table: Option<String>,
}

/// `threadline snapshot`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// The table (`table` or `schema.table`); it must be capture-ready.
    #[arg(long)]
    pub table: String,
    /// Rows per batch; each batch is one short transaction.
    #[arg(long, default_value_t = threadline_sqlx::DEFAULT_SNAPSHOT_BATCH_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,
}

/// Export encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormatArg {
    /// RFC 4180 CSV with a fixed header; JSON cells hold JSON.
    Csv,
    /// One JSON document `{"changes":[...],"format_version":1,"generated_at":"..."}`.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// `threadline export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Encoding.
    #[arg(long, value_enum, required_unless_present = "dry_run")]
    pub format: Option<ExportFormatArg>,
    /// Write to this file (through a temporary file and a rename); default stdout. Missing
    /// parent folders are created, so check the path for typos.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Only changes of this table (`table` or `schema.table`).
    #[arg(long)]
    pub table: Option<String>,
    /// Only changes captured at or after this time: ISO 8601 with an offset
    /// (`2026-01-31T12:00:00Z`, `...+02:00`) or a date (`2026-01-31`, from its start in UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// Only changes captured at or before this time (a date means through its end in UTC).
    #[arg(long)]
    pub to: Option<String>,
    /// Only changes made by this actor: `TYPE:ID` such as `user:42`, or `anonymous`.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only changes of transactions with this correlation id.
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Only changes of transactions with this request id.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Only changes of transactions with this W3C trace id (32 lowercase hex digits).
    #[arg(long)]
    pub trace_id: Option<String>,
    /// Only changes with this operation: insert, update, delete or snapshot.
    #[arg(long)]
    pub op: Option<String>,
    /// At most this many changes, newest first (default 10000).
    #[arg(long, conflicts_with = "all",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rows: Option<u64>,
    /// Every matching change, streamed page by page (memory stays flat).
    #[arg(long)]
    pub all: bool,
    /// Print how many changes match, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `threadline retention`.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RetentionCommand,
}

/// `threadline retention` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum RetentionCommand {
    /// Delete changes captured before the policy's cutoff, in short batches, then the
    /// transactions they leave empty.
    Purge(PurgeArgs),
}

/// `threadline retention purge`.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// Database, config file and schema.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Count what would be deleted, and delete nothing.
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Changes per batch; each batch is one short statement over whole transactions.
    #[arg(long, default_value_t = threadline_sqlx::DEFAULT_PURGE_BATCH_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(threadline_sqlx::MAX_PURGE_BATCH_SIZE)))]
    pub batch_size: u32,
    /// Stop after this many batches (default: until nothing is left); rerun to continue. A
    /// purge that stops with older changes left exits 3, so that a cron job notices.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_batches: Option<u32>,
    /// Really delete (needs `enabled = true` under `[retention]` too).
    #[arg(long)]
    pub execute: bool,
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
    /// Hardened mode (see guides/security.md).
    #[command(flatten)]
    pub hardening: HardeningArgs,
    /// The partitioned layout: audit_changes and audit_transactions range-partitioned by
    /// time, with a DEFAULT partition (default: `partitioned` under `[storage]` in the config
    /// file). Then run `threadline partitions ensure` (guides/scaling.md).
    #[arg(long)]
    pub partitioned: bool,
    /// Partition width (default: `interval` under `[storage]`, else month).
    #[arg(long, value_enum, requires = "partitioned")]
    pub interval: Option<IntervalArg>,
}

/// Hardened mode: who owns and who may read the audit trail.
#[derive(Debug, Clone, Default, Args)]
pub struct HardeningArgs {
    /// Role that owns the audit tables and functions; capture then runs as it (SECURITY
    /// DEFINER, pinned search_path) and other roles cannot write the trail directly.
    /// Default: `owner_role` from the config file, else not hardened.
    #[arg(long)]
    pub owner_role: Option<String>,
    /// Roles granted SELECT on the audit tables in hardened mode, comma separated
    /// (added to `reader_roles` from the config file).
    #[arg(long, value_delimiter = ',')]
    pub reader_role: Vec<String>,
}

/// `threadline gen-triggers`.
#[derive(Debug, Clone, Args)]
pub struct GenTriggersArgs {
    /// Tables to audit, comma separated (`posts,billing.invoices`, quote mixed case: `"Users"`).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub tables: Vec<String>,
    /// Audit every table of a schema (`--in-schema`, default public); needs --database-url.
    #[arg(long)]
    pub all: bool,
    /// With --all: the schema whose tables are audited (default public).
    #[arg(long, requires = "all")]
    pub in_schema: Option<String>,
    /// With --all: tables of the schema to leave out, comma separated.
    #[arg(long, value_delimiter = ',', requires = "all")]
    pub except: Vec<String>,
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
    /// Hardened mode: must match the install's (see guides/security.md).
    #[command(flatten)]
    pub hardening: HardeningArgs,
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
