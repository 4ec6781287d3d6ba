//! The partitioned layout (SPEC §10): which layout is installed, `partitions ensure`,
//! `partitions list`, and retention by partition. Planning and SQL come from
//! [`threadline_core::partition`]; this module runs them.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use threadline_core::partition::{
    LAYOUT_COMMENT_PREFIX, PartitionInterval, PartitionRange, PartitionedTable,
    create_partition_sql, move_from_default_sql, parse_range_bound, plan_ensure,
    retire_partition_sql, wholly_before,
};
use threadline_core::{Ident, InstallOptions, RetentionPolicy};

use crate::error::{Error, Result};
use crate::retention::{PurgeOptions, PurgeProgress, PurgeReport};
use crate::sql;

mod convert;
pub use convert::{
    ConvertOptions, ConvertReport, ConvertStep, ConvertedPartition, convert_to_partitioned,
};

/// How the audit tables are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageLayout {
    /// Plain tables (the default install).
    Plain,
    /// `audit_changes` and `audit_transactions` range-partitioned by time.
    Partitioned {
        /// The interval recorded by `install` (`None` when the tables carry no Threadline
        /// comment, e.g. partitioned by hand).
        interval: Option<PartitionInterval>,
    },
    /// The audit tables do not exist.
    NotInstalled,
}

/// Reads the layout from the catalog: whether `audit_changes` is partitioned, and the
/// interval `install` wrote in its comment.
pub async fn storage_layout(pool: &PgPool, install: &InstallOptions) -> Result<StorageLayout> {
    let mut conn = pool.acquire().await?;
    layout_on(&mut conn, &install.schema).await
}

pub(crate) async fn layout_on(conn: &mut PgConnection, schema: &Ident) -> Result<StorageLayout> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT relkind::text, obj_description(oid, 'pg_class') FROM pg_class
         WHERE oid = to_regclass($1)",
    )
    .bind(format!("{schema}.audit_changes"))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        None => StorageLayout::NotInstalled,
        Some((kind, _)) if kind != "p" => StorageLayout::Plain,
        Some((_, comment)) => StorageLayout::Partitioned {
            interval: comment
                .as_deref()
                .and_then(|c| c.strip_prefix(LAYOUT_COMMENT_PREFIX))
                .and_then(|i| i.parse().ok()),
        },
    })
}

/// One partition of an audit table, as [`list_partitions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PartitionInfo {
    /// `audit_changes` or `audit_transactions`.
    pub table: &'static str,
    /// The partition's name.
    pub name: String,
    /// Inclusive lower bound (`None` for the `DEFAULT` partition).
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound (`None` for the `DEFAULT` partition).
    pub to: Option<DateTime<Utc>>,
    /// Rows: exact for the `DEFAULT` partition, the planner's estimate (`pg_class.reltuples`,
    /// 0 before the first `ANALYZE`) for the others.
    pub rows: i64,
    /// Whether `rows` is an exact count.
    pub rows_exact: bool,
    /// Bytes on disk, indexes and TOAST included.
    pub bytes: i64,
}

impl PartitionInfo {
    /// Whether this is the `DEFAULT` partition.
    pub fn is_default(&self) -> bool {
        self.from.is_none()
    }
}

/// Every partition of both audit tables, `audit_transactions` first, each oldest first with
/// `DEFAULT` last. Fails on a plain install.
pub async fn list_partitions(
    pool: &PgPool,
    install: &InstallOptions,
) -> Result<Vec<PartitionInfo>> {
    let mut conn = pool.acquire().await?;
    require_partitioned(&mut conn, &install.schema).await?;
    let mut out = Vec::new();
    for table in PartitionedTable::ALL {
        let mut parts = partitions_on(&mut conn, &install.schema, table).await?;
        parts.sort_by_key(|p| (p.range.is_none(), p.range.map(|r| r.from)));
        for p in parts {
            let (rows, exact) = if p.range.is_none() {
                let q = format!("SELECT count(*) FROM {}.{}", install.schema, q(&p.name));
                (
                    sqlx::query_scalar(sql::generated(q))
                        .fetch_one(&mut *conn)
                        .await?,
                    true,
                )
            } else {
                (p.estimate.max(0), false)
            };
            out.push(PartitionInfo {
                table: table.name(),
                name: p.name,
                from: p.range.map(|r| r.from),
                to: p.range.map(|r| r.to),
                rows,
                rows_exact: exact,
                bytes: p.bytes,
            });
        }
    }
    Ok(out)
}

pub(crate) fn q(name: &str) -> String {
    threadline_core::quote_ident(name)
}

pub(crate) struct Part {
    oid: u32,
    name: String,
    pub(crate) range: Option<PartitionRange>,
    estimate: i64,
    bytes: i64,
}

/// The partitions of one table with their bounds (printed with their UTC offset, whatever
/// the session's `TimeZone`).
pub(crate) async fn partitions_on(
    conn: &mut PgConnection,
    schema: &Ident,
    table: PartitionedTable,
) -> Result<Vec<Part>> {
    let rows: Vec<(sqlx::postgres::types::Oid, String, Option<String>, f32, i64)> = sqlx::query_as(
        "SELECT c.oid, c.relname::text,
                pg_get_expr(c.relpartbound, c.oid),
                c.reltuples, pg_total_relation_size(c.oid)
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = to_regclass($1)",
    )
    .bind(format!("{schema}.{}", table.name()))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(oid, name, bound, estimate, bytes)| Part {
            oid: oid.0,
            name,
            range: bound
                .as_deref()
                .and_then(parse_range_bound)
                .map(|(from, to)| PartitionRange { table, from, to }),
            estimate: estimate as i64,
            bytes,
        })
        .collect())
}

async fn require_partitioned(
    conn: &mut PgConnection,
    schema: &Ident,
) -> Result<Option<PartitionInterval>> {
    match layout_on(conn, schema).await? {
        StorageLayout::Partitioned { interval } => Ok(interval),
        StorageLayout::Plain => Err(Error::invalid(
            "layout",
            format!(
                "the audit tables in schema {} are not partitioned; convert them with `threadline partitions convert` (or install with `threadline install --partitioned`)",
                schema.as_str()
            ),
        )),
        StorageLayout::NotInstalled => Err(Error::invalid(
            "layout",
            format!(
                "Threadline is not installed in schema {}; run `threadline install --partitioned` and apply it",
                schema.as_str()
            ),
        )),
    }
}

/// Options of [`ensure_partitions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnsureOptions {
    /// Future partitions to create after the current one (default 3).
    pub premake: u32,
    /// The interval, when the tables do not record one (they do when `install` made them).
    pub interval: Option<PartitionInterval>,
    /// How long each step waits for a table lock before it gives up (default 10 s), so that
    /// a long transaction on `DEFAULT` cannot make capture queue behind maintenance.
    pub lock_timeout: Duration,
}

impl Default for EnsureOptions {
    fn default() -> Self {
        Self {
            premake: threadline_core::partition::DEFAULT_PREMAKE,
            interval: None,
            lock_timeout: Duration::from_secs(10),
        }
    }
}

impl EnsureOptions {
    /// Sets `premake`.
    #[must_use]
    pub fn premake(mut self, premake: u32) -> Self {
        self.premake = premake;
        self
    }

    /// Sets the interval used when the tables record none.
    #[must_use]
    pub fn interval(mut self, interval: PartitionInterval) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Sets the lock timeout of each step.
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }
}

/// One partition that [`ensure_partitions`] created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CreatedPartition {
    /// `audit_changes` or `audit_transactions`.
    pub table: &'static str,
    /// Its name.
    pub name: String,
    /// Inclusive lower bound.
    pub from: DateTime<Utc>,
    /// Exclusive upper bound.
    pub to: DateTime<Utc>,
    /// Rows moved into it out of `DEFAULT`.
    pub moved_rows: u64,
    /// How long its transaction ran, which bounds how long `DEFAULT` was locked against
    /// writes (reads go on until the final attach).
    pub locked_for: Duration,
}

/// What [`ensure_partitions`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct EnsureReport {
    /// The interval used.
    pub interval: &'static str,
    /// Partitions created (none when everything already existed).
    pub created: Vec<CreatedPartition>,
}

pub(crate) const ENSURE_LOCK: &str = "threadline partitions ensure";

/// Creates the partitions from now to now + `premake` intervals, for both audit tables, and
/// moves every row that landed in a `DEFAULT` partition into a partition of its own range.
///
/// Idempotent, and safe to run concurrently (from cron, or at every start-up of every
/// instance): each partition is made in its own short transaction that first takes a
/// transaction-level advisory lock (one per audit schema) and then re-reads what exists, so
/// a second run waits, finds the work done, and does nothing. A partition whose range has
/// rows in `DEFAULT` is filled from them: see
/// [`move_from_default_sql`](threadline_core::partition::move_from_default_sql) for the locks.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{EnsureOptions, InstallOptions, ensure_partitions};
/// let report = ensure_partitions(&pool, &InstallOptions::default(), &EnsureOptions::default().premake(3)).await?;
/// for p in &report.created {
///     println!("created {} ({} rows moved from DEFAULT)", p.name, p.moved_rows);
/// }
/// # Ok(()) }
/// ```
pub async fn ensure_partitions(
    pool: &PgPool,
    install: &InstallOptions,
    options: &EnsureOptions,
) -> Result<EnsureReport> {
    if options.premake > threadline_core::partition::MAX_PREMAKE {
        return Err(Error::invalid(
            "premake",
            format!(
                "{} is too many; use 0 to {}",
                options.premake,
                threadline_core::partition::MAX_PREMAKE
            ),
        ));
    }
    let schema = &install.schema;
    let interval = {
        let mut conn = pool.acquire().await?;
        require_partitioned(&mut conn, schema).await?
    }
    .or(options.interval)
    .ok_or_else(|| {
        Error::invalid(
            "interval",
            "the audit tables record no partition interval; pass one (--interval day|week|month)",
        )
    })?;
    let mut report = EnsureReport {
        interval: interval.as_str(),
        created: Vec::new(),
    };
    for table in PartitionedTable::ALL {
        // Each pass creates one partition; the bound only guards against a plan that never
        // shrinks (it always does: the partition just made now overlaps its range).
        for _ in 0..10_000 {
            match ensure_step(pool, schema, table, interval, options).await? {
                Some(created) => {
                    tracing::info!(
                        target: "threadline::partitions",
                        partition = %created.name,
                        moved_rows = created.moved_rows,
                        locked_ms = created.locked_for.as_millis() as u64,
                        "threadline partition created"
                    );
                    report.created.push(created);
                }
                None => break,
            }
        }
    }
    Ok(report)
}

pub(crate) async fn begin_maintenance<'c>(
    conn: &'c mut PgConnection,
    lock_timeout: Duration,
    lock: &str,
    schema: &Ident,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query(
        "SELECT set_config('lock_timeout', $1, true), set_config('TimeZone', 'UTC', true),
                pg_advisory_xact_lock(hashtextextended($2, 0))",
    )
    .bind(format!("{}ms", lock_timeout.as_millis().max(1)))
    .bind(format!("{lock} {}", schema.as_str()))
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// Creates the oldest missing partition of `table`, if any.
async fn ensure_step(
    pool: &PgPool,
    schema: &Ident,
    table: PartitionedTable,
    interval: PartitionInterval,
    options: &EnsureOptions,
) -> Result<Option<CreatedPartition>> {
    let mut conn = pool.acquire().await?;
    let mut tx = begin_maintenance(&mut conn, options.lock_timeout, ENSURE_LOCK, schema).await?;
    let existing: Vec<PartitionRange> = partitions_on(&mut tx, schema, table)
        .await?
        .into_iter()
        .filter_map(|p| p.range)
        .collect();
    let default_days: Vec<DateTime<Utc>> = sqlx::query_scalar(sql::generated(format!(
        "SELECT DISTINCT date_trunc('day', {key}, 'UTC') FROM {schema}.{default}",
        key = table.key(),
        default = q(&table.default_partition()),
    )))
    .fetch_all(&mut *tx)
    .await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    let plan = plan_ensure(
        table,
        interval,
        now,
        options.premake,
        &existing,
        &default_days,
    );
    let Some(range) = plan.first().copied() else {
        tx.commit().await?;
        return Ok(None);
    };
    let owner = Ident::new(table_owner(&mut tx, &format!("{schema}.{}", table.name())).await?)?;
    let has_rows = default_days
        .iter()
        .any(|d| range.from <= *d && *d < range.to);
    let locked = Instant::now();
    let moved_rows = if has_rows {
        sqlx::raw_sql(sql::generated(move_from_default_sql(
            schema, &range, &owner,
        )))
        .execute(&mut *tx)
        .await
        .map_err(|e| lock_hint(e, table))?;
        let count: i64 = sqlx::query_scalar(sql::generated(format!(
            "SELECT count(*) FROM {schema}.{}",
            q(&range.name())
        )))
        .fetch_one(&mut *tx)
        .await?;
        count as u64
    } else {
        sqlx::raw_sql(sql::generated(create_partition_sql(schema, &range, &owner)))
            .execute(&mut *tx)
            .await
            .map_err(|e| lock_hint(e, table))?;
        0
    };
    tx.commit().await?;
    Ok(Some(CreatedPartition {
        table: table.name(),
        name: range.name(),
        from: range.from,
        to: range.to,
        moved_rows,
        locked_for: locked.elapsed(),
    }))
}

/// Adds the fix to a lock timeout.
fn lock_hint(e: sqlx::Error, table: PartitionedTable) -> Error {
    if let sqlx::Error::Database(db) = &e
        && db.code().as_deref() == Some("55P03")
    {
        return Error::invalid(
            "lock",
            format!(
                "gave up waiting for a lock on {} (a long transaction holds it): {db}; nothing was changed, run the command again later",
                table.name()
            ),
        );
    }
    Error::Database(e)
}

/// A partition retention retired or kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RetiredPartitionReport {
    /// `audit_changes` or `audit_transactions`.
    pub table: &'static str,
    /// The partition's name.
    pub name: String,
    /// Inclusive lower bound.
    pub from: DateTime<Utc>,
    /// Exclusive upper bound.
    pub to: DateTime<Utc>,
    /// Its rows (exact).
    pub rows: u64,
    /// `drop` or `detach`; `keep` when transactions in it still have changes (their rows stay,
    /// the others are deleted in batches).
    pub action: &'static str,
    /// Transactions in it that still have changes (kept with the partition).
    pub straddling_transactions: u64,
}

/// What [`purge_partitions`] did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PartitionPurgeReport {
    /// Totals, as [`purge`](crate::purge) reports them: rows of retired partitions included.
    pub purge: PurgeReport,
    /// Partitions wholly before the cutoff, oldest first.
    pub partitions: Vec<RetiredPartitionReport>,
    /// Changes deleted row by row (in the boundary partition and `DEFAULT`).
    pub boundary_changes: u64,
}

const PURGE_LOCK: &str = "threadline retention purge";

/// Retention on the partitioned layout (also what [`purge`](crate::purge) does there):
///
/// 1. every `audit_changes` partition that lies wholly before the cutoff is dropped (or
///    detached, `retired`) in a short transaction of its own;
/// 2. the changes left before the cutoff (in the boundary partition and `DEFAULT`) are
///    deleted in batches, exactly as on the plain layout;
/// 3. when `delete_empty_transactions` is on, every `audit_transactions` partition wholly
///    before the cutoff is retired too, unless transactions in it still have changes (a
///    transaction that straddles the cutoff keeps its row as long as any of its changes
///    remains): then only its other rows are deleted, in batches, and the partition stays.
///    Actions linked to a retired transaction are unlinked first.
///
/// A dry run counts exactly what would go, partition by partition, and changes nothing.
/// Two runs never overlap: a second one fails at once with a clear error.
pub async fn purge_partitions(
    pool: &PgPool,
    install: &InstallOptions,
    policy: &RetentionPolicy,
    options: &PurgeOptions,
    mut on_batch: impl FnMut(&PurgeProgress),
) -> Result<PartitionPurgeReport> {
    crate::retention::validate(options)?;
    if !options.dry_run && !policy.enabled {
        return Err(Error::RetentionDisabled);
    }
    let schema = &install.schema;
    // One connection does the whole run (a pool of one is enough), holding a session-level
    // advisory lock.
    let mut guard = pool.acquire().await?;
    require_partitioned(&mut guard, schema).await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
        .bind(format!("{PURGE_LOCK} {}", schema.as_str()))
        .fetch_one(&mut *guard)
        .await?;
    if !locked {
        return Err(Error::invalid(
            "retention",
            "another retention purge of this audit schema is running; wait for it to finish, then run again",
        ));
    }
    let mut result = purge_locked(&mut guard, install, policy, options, &mut on_batch).await;
    if let Ok(report) = &mut result
        && !options.dry_run
    {
        match crate::seal::record_purged_seals(&mut guard, schema).await {
            Ok(n) => report.purge.purged_seals = n,
            Err(e) => result = Err(e),
        }
    }
    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind(format!("{PURGE_LOCK} {}", schema.as_str()))
        .execute(&mut *guard)
        .await;
    result
}

async fn purge_locked(
    conn: &mut PgConnection,
    install: &InstallOptions,
    policy: &RetentionPolicy,
    options: &PurgeOptions,
    on_batch: &mut impl FnMut(&PurgeProgress),
) -> Result<PartitionPurgeReport> {
    let schema = &install.schema;
    let cutoff = crate::retention::resolve_cutoff(&mut *conn, policy, options.cutoff).await?;
    let how = options.retired_partitions;
    let lock_timeout = Duration::from_secs(10);
    let mut report = PartitionPurgeReport {
        purge: PurgeReport {
            cutoff,
            dry_run: options.dry_run,
            deleted_changes: 0,
            deleted_transactions: 0,
            batches: 0,
            complete: true,
            purged_seals: 0,
        },
        partitions: Vec::new(),
        boundary_changes: 0,
    };

    // 1. Change partitions wholly before the cutoff.
    let change_parts = partitions_on(&mut *conn, schema, PartitionedTable::Changes).await?;
    let ranges: Vec<PartitionRange> = change_parts.iter().filter_map(|p| p.range).collect();
    let retired = wholly_before(&ranges, cutoff);
    let mut retired_oids: Vec<sqlx::postgres::types::Oid> = Vec::new();
    for range in &retired {
        let rows = count_rows(&mut *conn, schema, &range.name()).await?;
        if let Some(p) = change_parts.iter().find(|p| p.range == Some(*range)) {
            retired_oids.push(sqlx::postgres::types::Oid(p.oid));
        }
        if !options.dry_run {
            let mut tx = begin_maintenance(&mut *conn, lock_timeout, ENSURE_LOCK, schema).await?;
            sqlx::raw_sql(sql::generated(retire_partition_sql(schema, range, how)))
                .execute(&mut *tx)
                .await
                .map_err(|e| lock_hint(e, range.table))?;
            tx.commit().await?;
            log_retired(range, rows, how.as_str());
        }
        report.purge.deleted_changes += rows;
        report
            .partitions
            .push(retired_report(range, rows, how.as_str(), 0));
    }

    // 2. The rest, row by row.
    if options.dry_run {
        let (changes, transactions): (i64, i64) = sqlx::query_as(sql::in_schema(
            "WITH eligible AS (
                SELECT transaction_id FROM @S.audit_changes
                WHERE captured_at < $1 AND tableoid <> ALL ($3)
            )
            SELECT (SELECT count(*) FROM eligible),
                CASE WHEN $2 THEN (
                    SELECT count(*) FROM @S.audit_transactions t
                    WHERE t.id IN (SELECT transaction_id FROM eligible)
                      AND ($4::timestamptz IS NULL OR t.occurred_at >= $4)
                      AND NOT EXISTS (SELECT 1 FROM @S.audit_changes c
                                      WHERE c.transaction_id = t.id AND c.captured_at >= $1)
                ) ELSE 0 END",
            schema,
        ))
        .bind(cutoff)
        .bind(policy.delete_empty_transactions)
        .bind(&retired_oids)
        .bind(tx_partition_floor(&mut *conn, schema, cutoff).await?)
        .fetch_one(&mut *conn)
        .await?;
        report.boundary_changes = changes as u64;
        report.purge.deleted_changes += changes as u64;
        report.purge.deleted_transactions += transactions as u64;
    } else {
        let rows =
            crate::retention::purge_rows(&mut *conn, install, policy, options, cutoff, on_batch)
                .await?;
        report.boundary_changes = rows.deleted_changes;
        report.purge.deleted_changes += rows.deleted_changes;
        report.purge.deleted_transactions += rows.deleted_transactions;
        report.purge.batches = rows.batches;
        report.purge.complete = rows.complete;
    }

    // 3. Transaction partitions wholly before the cutoff.
    if policy.delete_empty_transactions {
        let tx_parts = partitions_on(&mut *conn, schema, PartitionedTable::Transactions).await?;
        let ranges: Vec<PartitionRange> = tx_parts.iter().filter_map(|p| p.range).collect();
        for range in wholly_before(&ranges, cutoff) {
            let name = q(&range.name());
            let rows = count_rows(&mut *conn, schema, &range.name()).await?;
            // Transactions of this partition that still have a change: in a dry run, every
            // change outside the retired change partitions counts as staying.
            let straddlers_sql = format!(
                "SELECT coalesce(array_agg(DISTINCT c.transaction_id), '{{}}')
                 FROM {schema}.audit_changes c
                 WHERE c.transaction_id BETWEEN (SELECT min(id) FROM {schema}.{name})
                                            AND (SELECT max(id) FROM {schema}.{name})
                   AND c.tableoid <> ALL ($1)
                   AND (NOT $2 OR c.captured_at >= $3)
                   AND EXISTS (SELECT 1 FROM {schema}.{name} t WHERE t.id = c.transaction_id)"
            );
            if options.dry_run {
                let straddlers: Vec<i64> = sqlx::query_scalar(sql::generated(straddlers_sql))
                    .bind(&retired_oids)
                    .bind(true)
                    .bind(cutoff)
                    .fetch_one(&mut *conn)
                    .await?;
                let kept = straddlers.len() as u64;
                report.purge.deleted_transactions += rows - kept;
                let action = if kept == 0 { how.as_str() } else { "keep" };
                report
                    .partitions
                    .push(retired_report(&range, rows, action, kept));
                continue;
            }
            let mut tx = begin_maintenance(&mut *conn, lock_timeout, ENSURE_LOCK, schema).await?;
            // Wait for any transaction still writing here, and keep new ones out.
            sqlx::raw_sql(sql::generated(format!(
                "LOCK TABLE {schema}.{name} IN SHARE ROW EXCLUSIVE MODE"
            )))
            .execute(&mut *tx)
            .await
            .map_err(|e| lock_hint(e, range.table))?;
            let straddlers: Vec<i64> = sqlx::query_scalar(sql::generated(straddlers_sql))
                .bind(Vec::<sqlx::postgres::types::Oid>::new())
                .bind(false)
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await?;
            if straddlers.is_empty() {
                sqlx::raw_sql(sql::generated(format!(
                    "UPDATE {schema}.audit_actions SET transaction_id = NULL
                     WHERE transaction_id BETWEEN (SELECT min(id) FROM {schema}.{name})
                                              AND (SELECT max(id) FROM {schema}.{name})
                       AND transaction_id IN (SELECT id FROM {schema}.{name});
                     {}",
                    retire_partition_sql(schema, &range, how)
                )))
                .execute(&mut *tx)
                .await
                .map_err(|e| lock_hint(e, range.table))?;
                tx.commit().await?;
                log_retired(&range, rows, how.as_str());
                report.purge.deleted_transactions += rows;
                report
                    .partitions
                    .push(retired_report(&range, rows, how.as_str(), 0));
                continue;
            }
            tx.commit().await?;
            // Keep the partition and its straddlers; delete the others in batches (the
            // unlink trigger clears their actions' links).
            let mut deleted = 0u64;
            loop {
                let n = sqlx::query(sql::generated(format!(
                    "DELETE FROM {schema}.{name} WHERE id IN (
                        SELECT id FROM {schema}.{name} WHERE id <> ALL ($1) LIMIT $2)"
                )))
                .bind(&straddlers)
                .bind(i64::from(options.batch_size))
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if n == 0 {
                    break;
                }
                deleted += n;
            }
            report.purge.deleted_transactions += deleted;
            report.partitions.push(retired_report(
                &range,
                rows,
                "keep",
                straddlers.len() as u64,
            ));
        }
    }
    Ok(report)
}

/// The lower bound of the oldest transaction partition that is not wholly before `cutoff`
/// (transaction rows before it go with their partitions); `None` when none is.
async fn tx_partition_floor(
    conn: &mut PgConnection,
    schema: &Ident,
    cutoff: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let parts = partitions_on(conn, schema, PartitionedTable::Transactions).await?;
    let ranges: Vec<PartitionRange> = parts.iter().filter_map(|p| p.range).collect();
    Ok(wholly_before(&ranges, cutoff).last().map(|r| r.to))
}

async fn count_rows(conn: &mut PgConnection, schema: &Ident, name: &str) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(sql::generated(format!(
        "SELECT count(*) FROM {schema}.{}",
        q(name)
    )))
    .fetch_one(&mut *conn)
    .await?;
    Ok(n as u64)
}

fn retired_report(
    range: &PartitionRange,
    rows: u64,
    action: &'static str,
    straddling: u64,
) -> RetiredPartitionReport {
    RetiredPartitionReport {
        table: range.table.name(),
        name: range.name(),
        from: range.from,
        to: range.to,
        rows,
        action,
        straddling_transactions: straddling,
    }
}

fn log_retired(range: &PartitionRange, rows: u64, action: &str) {
    tracing::info!(
        target: "threadline::retention",
        partition = %range.name(),
        rows,
        action,
        "threadline retention retired a partition"
    );
}

/// The `partitions` check of `doctor` (partitioned layout only): a warning when a `DEFAULT`
/// partition holds rows, or when fewer than `premake` partitions lie ahead of now.
pub(crate) async fn check_partitions(
    pool: &PgPool,
    install: &InstallOptions,
    premake: u32,
    findings: &mut Vec<threadline_core::Finding>,
) -> Result<()> {
    use threadline_core::{Finding, Severity};
    let parts = list_partitions(pool, install).await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?;
    let before = findings.len();
    let ensure = format!("threadline partitions ensure --premake {premake}");
    for table in PartitionedTable::ALL {
        let mine: Vec<&PartitionInfo> = parts.iter().filter(|p| p.table == table.name()).collect();
        for p in mine.iter().filter(|p| p.is_default() && p.rows > 0) {
            findings.push(Finding::problem(
                "partitions",
                Severity::Warning,
                format!(
                    "{} holds {} rows: their partitions were missing when they were written, so they are not dropped by retention and slow every query of {}",
                    p.name,
                    p.rows,
                    table.name()
                ),
                format!("run `{ensure}` (it moves them into partitions of their own), and schedule it (guides/scaling.md)"),
            ));
        }
        let future = mine
            .iter()
            .filter(|p| p.from.is_some_and(|from| from > now))
            .count();
        if future < premake as usize {
            findings.push(Finding::problem(
                "partitions",
                Severity::Warning,
                format!(
                    "{} has {future} partitions ahead of now, fewer than premake = {premake}: new rows will soon land in DEFAULT",
                    table.name()
                ),
                format!("run `{ensure}` from cron, daily (guides/scaling.md)"),
            ));
        }
    }
    if findings.len() == before {
        findings.push(Finding::ok(
            "partitions",
            format!(
                "{} partitions, at least {premake} ahead of now for each table, and DEFAULT is empty",
                parts.iter().filter(|p| !p.is_default()).count()
            ),
        ));
    }
    Ok(())
}

/// The owner role of the table `qualified` (`schema.table`, quoted as needed).
pub(crate) async fn table_owner(conn: &mut PgConnection, qualified: &str) -> Result<String> {
    Ok(sqlx::query_scalar(
        "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = to_regclass($1)",
    )
    .bind(qualified)
    .fetch_one(&mut *conn)
    .await?)
}
