//! `partitions convert`: a plain trail becomes the partitioned layout without a rewrite (see
//! [`threadline_core::partition::convert_switch_sql`] for the steps and their locks).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use threadline_core::partition::{
    ConvertedTable, PartitionInterval, PartitionRange, PartitionedTable, convert_pkey_name,
    convert_prepare_sql, convert_range, convert_switch_sql,
};
use threadline_core::{Ident, InstallOptions};

use super::{CreatedPartition, ENSURE_LOCK, EnsureOptions, StorageLayout, layout_on, lock_hint};
use crate::error::{Error, Result};
use crate::sql;

/// Options of [`convert_to_partitioned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConvertOptions {
    /// The interval of the new partitions (default month).
    pub interval: PartitionInterval,
    /// Future partitions to create afterwards (default 3).
    pub premake: u32,
    /// How long each locking step waits before it gives up (default 10 s).
    pub lock_timeout: Duration,
    /// Apply the plan; `false` (the default) only plans.
    pub execute: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            interval: PartitionInterval::default(),
            premake: threadline_core::partition::DEFAULT_PREMAKE,
            lock_timeout: Duration::from_secs(10),
            execute: false,
        }
    }
}

impl ConvertOptions {
    /// Sets the interval.
    #[must_use]
    pub fn interval(mut self, interval: PartitionInterval) -> Self {
        self.interval = interval;
        self
    }

    /// Sets `premake`.
    #[must_use]
    pub fn premake(mut self, premake: u32) -> Self {
        self.premake = premake;
        self
    }

    /// Sets the lock timeout of each locking step.
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Applies the plan instead of only planning.
    #[must_use]
    pub fn execute(mut self, execute: bool) -> Self {
        self.execute = execute;
        self
    }
}

/// One step of the conversion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ConvertStep {
    /// What it does.
    pub title: String,
    /// The lock it takes, and what it blocks.
    pub lock: &'static str,
    /// Its SQL.
    pub sql: String,
}

/// An old table and the partition it becomes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ConvertedPartition {
    /// `audit_changes` or `audit_transactions`.
    pub table: &'static str,
    /// The partition's name.
    pub name: String,
    /// Inclusive lower bound.
    pub from: DateTime<Utc>,
    /// Exclusive upper bound.
    pub to: DateTime<Utc>,
}

/// What [`convert_to_partitioned`] planned, and did when executed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ConvertReport {
    /// The interval of the new layout.
    pub interval: &'static str,
    /// The partitions the old tables become.
    pub partitions: Vec<ConvertedPartition>,
    /// The steps, in order (the switch's SQL shows the ids read when planning; an executed
    /// run re-reads them under its lock).
    pub steps: Vec<ConvertStep>,
    /// Whether the plan was applied.
    pub executed: bool,
    /// How long the preparation ran (writes go on meanwhile).
    pub prepared_in: Duration,
    /// How long the switch held `ACCESS EXCLUSIVE` on the audit tables (capture waits).
    pub locked_for: Duration,
    /// The future partitions made afterwards.
    pub created: Vec<CreatedPartition>,
}

const LOCK_NOTE_PREPARE: &str =
    "none that blocks capture (the CHECK is added NOT VALID under a brief ACCESS EXCLUSIVE lock)";
const LOCK_NOTE_SWITCH: &str = "ACCESS EXCLUSIVE on both audit tables: capture waits until it commits; catalog changes only, no table is rewritten or scanned";

/// Converts a plain (unpartitioned) trail to the partitioned layout: each old audit table is
/// attached, unchanged, as one partition of its time range under a new parent made by the
/// partitioned install, then the future partitions are made. Without
/// [`execute`](ConvertOptions::execute) it only returns the plan.
///
/// Capture keeps working: the preparation (a concurrent index build and a `CHECK`
/// validation) lets writes go on, and the switch holds its lock only for catalog changes.
/// Two conversions, or a conversion and `partitions ensure`, never overlap (a session-level
/// advisory lock; a second run fails at once). A failed switch rolls back whole, leaving the
/// plain trail as it was (plus the prepared index and check, which a rerun reuses).
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{ConvertOptions, InstallOptions, PartitionInterval, convert_to_partitioned};
/// let options = ConvertOptions::default().interval(PartitionInterval::Month).execute(true);
/// let report = convert_to_partitioned(&pool, &InstallOptions::default(), &options).await?;
/// println!("capture waited at most {} ms", report.locked_for.as_millis());
/// # Ok(()) }
/// ```
pub async fn convert_to_partitioned(
    pool: &PgPool,
    install: &InstallOptions,
    options: &ConvertOptions,
) -> Result<ConvertReport> {
    let schema = &install.schema;
    // A connection of its own, closed at the end, so the session lock never outlives the run.
    let mut conn = pool.acquire().await?.detach();
    match layout_on(&mut conn, schema).await? {
        StorageLayout::Plain => {}
        StorageLayout::Partitioned { .. } => {
            return Err(Error::invalid(
                "layout",
                format!(
                    "the audit tables in schema {} are already partitioned; nothing to convert",
                    schema.as_str()
                ),
            ));
        }
        StorageLayout::NotInstalled => {
            return Err(Error::invalid(
                "layout",
                format!(
                    "Threadline is not installed in schema {}; run `threadline install --partitioned` instead",
                    schema.as_str()
                ),
            ));
        }
    }
    check_hardening(&mut conn, install).await?;
    let lock_key = format!("{ENSURE_LOCK} {}", schema.as_str());
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(&lock_key)
        .fetch_one(&mut conn)
        .await?;
    if !locked {
        return Err(Error::invalid(
            "convert",
            "another partition maintenance run (convert or ensure) of this audit schema is running; wait for it to finish, then run again",
        ));
    }
    let result = convert_locked(&mut conn, install, options).await;
    let _ = sqlx::Connection::close(conn).await;
    let mut report = result?;
    if report.executed {
        let ensure = EnsureOptions::default()
            .premake(options.premake)
            .interval(options.interval)
            .lock_timeout(options.lock_timeout);
        report.created = super::ensure_partitions(pool, install, &ensure)
            .await?
            .created;
    }
    Ok(report)
}

async fn convert_locked(
    conn: &mut PgConnection,
    install: &InstallOptions,
    options: &ConvertOptions,
) -> Result<ConvertReport> {
    let schema = &install.schema;
    sqlx::query(
        "SELECT set_config('TimeZone', 'UTC', false), set_config('lock_timeout', $1, false)",
    )
    .bind(format!("{}ms", options.lock_timeout.as_millis().max(1)))
    .execute(&mut *conn)
    .await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *conn)
        .await?;
    let mut ranges = Vec::new();
    for table in PartitionedTable::ALL {
        let (oldest, newest): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as(sql::generated(format!(
                "SELECT min({key}), max({key}) FROM {schema}.{name}",
                key = table.key(),
                name = table.name()
            )))
            .fetch_one(&mut *conn)
            .await?;
        ranges.push(convert_range(table, options.interval, now, oldest, newest));
    }
    let planned = read_tables(conn, schema, &ranges).await?;
    let fkeys = action_fkeys(conn, schema).await?;
    let mut steps = Vec::new();
    for range in &ranges {
        steps.push(ConvertStep {
            title: format!(
                "prepare {}: primary key index {} and the range check",
                range.table.name(),
                convert_pkey_name(range)
            ),
            lock: LOCK_NOTE_PREPARE,
            sql: convert_prepare_sql(schema, range).join(";\n") + ";\n",
        });
    }
    steps.push(ConvertStep {
        title: "switch: the old tables become partitions of new partitioned parents".to_owned(),
        lock: LOCK_NOTE_SWITCH,
        sql: convert_switch_sql(install, options.interval, &planned, &fkeys),
    });
    let mut report = ConvertReport {
        interval: options.interval.as_str(),
        partitions: ranges
            .iter()
            .map(|r| ConvertedPartition {
                table: r.table.name(),
                name: r.name(),
                from: r.from,
                to: r.to,
            })
            .collect(),
        steps,
        executed: false,
        prepared_in: Duration::ZERO,
        locked_for: Duration::ZERO,
        created: Vec::new(),
    };
    if !options.execute {
        return Ok(report);
    }

    let started = Instant::now();
    for range in &ranges {
        drop_invalid_index(conn, schema, &convert_pkey_name(range)).await?;
        for statement in convert_prepare_sql(schema, range) {
            sqlx::raw_sql(sql::generated(statement))
                .execute(&mut *conn)
                .await
                .map_err(|e| prepare_error(e, range))?;
        }
    }
    report.prepared_in = started.elapsed();

    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let locked = Instant::now();
    sqlx::raw_sql(sql::generated(format!(
        "SET LOCAL client_min_messages = warning;
         LOCK TABLE {schema}.audit_transactions, {schema}.audit_changes IN ACCESS EXCLUSIVE MODE"
    )))
    .execute(&mut *tx)
    .await
    .map_err(|e| lock_hint(e, PartitionedTable::Changes))?;
    let tables = read_tables(&mut tx, schema, &ranges).await?;
    let fkeys = action_fkeys(&mut tx, schema).await?;
    sqlx::raw_sql(sql::generated(convert_switch_sql(
        install,
        options.interval,
        &tables,
        &fkeys,
    )))
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        Error::invalid(
            "convert",
            format!(
                "the switch failed and was rolled back, the plain trail is unchanged: {e}; if a column or index differs, run `threadline install` (plain) to bring the trail up to date first"
            ),
        )
    })?;
    tx.commit().await?;
    report.locked_for = locked.elapsed();
    report.executed = true;
    tracing::info!(
        target: "threadline::partitions",
        locked_ms = report.locked_for.as_millis() as u64,
        prepared_ms = report.prepared_in.as_millis() as u64,
        "threadline converted the trail to the partitioned layout"
    );
    Ok(report)
}

/// The switch re-runs the install, which would turn a hardened trail's functions back to
/// `SECURITY INVOKER` without the same owner role: refuse, naming the role to pass.
async fn check_hardening(conn: &mut PgConnection, install: &InstallOptions) -> Result<()> {
    let (hardened, owner): (bool, String) = sqlx::query_as(
        "SELECT coalesce((SELECT p.prosecdef FROM pg_proc p
                          WHERE p.pronamespace = to_regnamespace($1)
                            AND p.proname = 'threadline_transaction_id'), false),
                (SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = to_regclass($2))",
    )
    .bind(install.schema.as_str())
    .bind(format!("{}.audit_changes", install.schema))
    .fetch_one(&mut *conn)
    .await?;
    match &install.owner_role {
        None if hardened => Err(Error::invalid(
            "convert",
            format!(
                "the trail is hardened (owned by {owner}); run convert with the same hardening settings as the install: owner_role = \"{owner}\" and the reader roles in threadline.toml"
            ),
        )),
        Some(role) if role.as_str() != owner => Err(Error::invalid(
            "convert",
            format!(
                "the audit tables are owned by {owner}, not by the owner role {}; use the owner role the trail was installed with",
                role.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

/// What the switch needs of each old table: its primary key, its other indexes, and the id
/// the parent's identity starts from.
async fn read_tables(
    conn: &mut PgConnection,
    schema: &Ident,
    ranges: &[PartitionRange],
) -> Result<Vec<ConvertedTable>> {
    let mut out = Vec::new();
    for range in ranges {
        let table = format!("{schema}.{}", range.table.name());
        let primary_key: Option<String> = sqlx::query_scalar(
            "SELECT conname::text FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'",
        )
        .bind(&table)
        .fetch_optional(&mut *conn)
        .await?;
        let primary_key = primary_key.ok_or_else(|| {
            Error::invalid(
                "convert",
                format!(
                    "{table} has no primary key; run `threadline install` to repair the trail first"
                ),
            )
        })?;
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = to_regclass($1) AND NOT i.indisprimary AND c.relname <> $2
             ORDER BY c.relname",
        )
        .bind(&table)
        .bind(convert_pkey_name(range))
        .fetch_all(&mut *conn)
        .await?;
        let next_id: i64 = sqlx::query_scalar(sql::generated(format!(
            "SELECT greatest(
                (SELECT coalesce(max(id), 0) FROM {table}),
                (SELECT coalesce(max(s.last_value), 0) FROM pg_sequences s
                 WHERE format('%I.%I', s.schemaname, s.sequencename)::regclass
                       = pg_get_serial_sequence($1, 'id')::regclass)
             ) + 1"
        )))
        .bind(&table)
        .fetch_one(&mut *conn)
        .await?;
        let owner = super::table_owner(conn, &table).await?;
        out.push(ConvertedTable {
            range: *range,
            primary_key,
            indexes,
            next_id,
            owner: Ident::new(owner)?,
        });
    }
    Ok(out)
}

/// The foreign keys of `audit_actions` that reference `audit_transactions` (the partitioned
/// layout replaces them with a trigger).
async fn action_fkeys(conn: &mut PgConnection, schema: &Ident) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint
         WHERE conrelid = to_regclass($1) AND contype = 'f' AND confrelid = to_regclass($2)
         ORDER BY conname",
    )
    .bind(format!("{schema}.audit_actions"))
    .bind(format!("{schema}.audit_transactions"))
    .fetch_all(&mut *conn)
    .await?)
}

/// A concurrent index build that failed leaves an invalid index behind; a rerun drops it.
async fn drop_invalid_index(conn: &mut PgConnection, schema: &Ident, name: &str) -> Result<()> {
    let invalid: bool = sqlx::query_scalar(
        "SELECT coalesce((SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)), false)",
    )
    .bind(format!("{schema}.{}", threadline_core::quote_ident(name)))
    .fetch_one(&mut *conn)
    .await?;
    if invalid {
        sqlx::raw_sql(sql::generated(format!(
            "DROP INDEX CONCURRENTLY {schema}.{}",
            threadline_core::quote_ident(name)
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn prepare_error(e: sqlx::Error, range: &PartitionRange) -> Error {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("23514")
    {
        return Error::invalid(
            "convert",
            format!(
                "{} holds rows outside [{}, {}) (a clock far off?): {db}; nothing was switched",
                range.table.name(),
                range.from.to_rfc3339(),
                range.to.to_rfc3339()
            ),
        );
    }
    lock_hint(e, range.table)
}
