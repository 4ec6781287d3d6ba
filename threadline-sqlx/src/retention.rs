//! Retention purge (SPEC §7): deleting changes older than the policy window, in short batches.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use threadline_core::partition::RetiredPartition;
use threadline_core::{InstallOptions, RetentionPolicy};

use crate::error::{Error, Result};
use crate::sql;

/// Default number of changes per batch.
pub const DEFAULT_PURGE_BATCH_SIZE: u32 = 1_000;

/// Largest accepted `batch_size`.
pub const MAX_PURGE_BATCH_SIZE: u32 = 1_000_000;

/// How to run a purge.
///
/// ```
/// use threadline_sqlx::PurgeOptions;
/// let options = PurgeOptions { batch_size: 500, max_batches: Some(100), ..PurgeOptions::default() };
/// assert!(!options.dry_run);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeOptions {
    /// Changes picked per batch (default 1,000; 1 to 1,000,000).
    pub batch_size: u32,
    /// Stop after this many batches (default: run until nothing is left).
    pub max_batches: Option<u32>,
    /// Count what would be deleted, and delete nothing.
    pub dry_run: bool,
    /// Delete changes captured before this time instead of the policy's cutoff. It may be
    /// older than the policy's cutoff (keeping more), never newer.
    pub cutoff: Option<DateTime<Utc>>,
    /// On the partitioned layout: drop (default) or only detach the partitions that lie
    /// wholly before the cutoff (`[storage] retired_partitions`).
    pub retired_partitions: RetiredPartition,
}

impl Default for PurgeOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_PURGE_BATCH_SIZE,
            max_batches: None,
            dry_run: false,
            cutoff: None,
            retired_partitions: RetiredPartition::Drop,
        }
    }
}

/// What a purge deleted (or, for a dry run, would delete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Changes captured strictly before this time were eligible.
    pub cutoff: DateTime<Utc>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Changes deleted (dry run: eligible now).
    pub deleted_changes: u64,
    /// Transactions deleted because all their changes were purged (dry run: that would be).
    pub deleted_transactions: u64,
    /// Batches that deleted something (0 for a dry run).
    pub batches: u32,
    /// Whether no eligible change is left. False when `max_batches` stopped the run early.
    /// A dry run counts a run to completion and reports true.
    pub complete: bool,
    /// Seals newly marked purged because this run deleted rows they cover (and every older
    /// seal): verification now starts after them (see `guides/compliance.md`). 0 for a dry
    /// run.
    pub purged_seals: u64,
}

/// Progress after one batch, passed to the callback of [`purge_with_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeProgress {
    /// 1-based batch number.
    pub batch: u32,
    /// Changes deleted by this batch.
    pub changes: u64,
    /// Transactions deleted by this batch.
    pub transactions: u64,
    /// Changes deleted so far.
    pub total_changes: u64,
    /// Transactions deleted so far.
    pub total_transactions: u64,
}

const COUNT: &str = "WITH eligible AS (
        SELECT transaction_id FROM @S.audit_changes WHERE captured_at < $1
    )
    SELECT (SELECT count(*) FROM eligible),
        CASE WHEN $2 THEN (
            SELECT count(*) FROM @S.audit_transactions t
            WHERE t.id IN (SELECT transaction_id FROM eligible)
              AND NOT EXISTS (SELECT 1 FROM @S.audit_changes c
                              WHERE c.transaction_id = t.id AND c.captured_at >= $1)
        ) ELSE 0 END";

const BATCH: &str = "WITH picked AS (
        SELECT DISTINCT s.transaction_id AS id FROM (
            SELECT transaction_id FROM @S.audit_changes
            WHERE captured_at < $1 ORDER BY captured_at, id LIMIT $2
        ) AS s
    ), changes AS (
        DELETE FROM @S.audit_changes c USING picked p
        WHERE c.transaction_id = p.id AND c.captured_at < $1
        RETURNING 1
    ), transactions AS (
        DELETE FROM @S.audit_transactions t USING picked p
        WHERE $3 AND t.id = p.id
          AND NOT EXISTS (SELECT 1 FROM @S.audit_changes c
                          WHERE c.transaction_id = t.id AND c.captured_at >= $1)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM changes),
        (SELECT count(*) FROM transactions)";

const REMAINING: &str = "SELECT EXISTS (SELECT 1 FROM @S.audit_changes WHERE captured_at < $1)";

/// Purges changes older than the policy window. See [`purge_with_progress`].
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{InstallOptions, PurgeOptions, RetentionPolicy, purge};
/// let policy = RetentionPolicy::keep_days(90)?.enabled(true);
/// let report = purge(&pool, &InstallOptions::default(), &policy, &PurgeOptions::default()).await?;
/// println!("deleted {} changes", report.deleted_changes);
/// # Ok(()) }
/// ```
pub async fn purge(
    pool: &PgPool,
    install: &InstallOptions,
    policy: &RetentionPolicy,
    options: &PurgeOptions,
) -> Result<PurgeReport> {
    purge_with_progress(pool, install, policy, options, |_| {}).await
}

/// Purges changes captured strictly before the cutoff (the database's clock minus the
/// policy window, or `options.cutoff` when older), in batches of whole transactions, calling
/// `on_batch` and emitting a `tracing` info event (target `threadline::retention`) after each.
///
/// A live run needs `policy.enabled`; a dry run counts exactly what a run to completion
/// would delete, including the transactions it would empty, and deletes nothing.
///
/// # How a batch works
///
/// A batch is one SQL statement, so it commits or rolls back as a whole. It picks the oldest
/// `batch_size` eligible changes (`captured_at` strictly before the cutoff, in
/// `(captured_at, id)` order), widens the pick to *every* eligible change of the transactions
/// they belong to, deletes those changes, and (when `delete_empty_transactions` is on) deletes
/// the picked transaction rows that have no change left. A purge interrupted at any point
/// therefore never leaves a transaction with only part of its eligible changes deleted, nor
/// an emptied transaction row behind: rerunning it continues where it stopped. A batch can
/// exceed `batch_size` when one transaction holds more eligible changes than that.
///
/// # Which transaction rows are deleted
///
/// Only rows whose changes this purge deleted, and only when no change of theirs is left (a
/// transaction whose changes straddle the cutoff keeps its row and its newer changes). Rows
/// that never had changes, such as a transaction that only recorded actions, are never
/// deleted. Concurrent capture cannot race with this: a transaction row and its changes are
/// written by the same database transaction, so the purge either sees both (committed) or
/// neither (still open), and a committed transaction never gets new changes. Deleting a
/// transaction row sets `transaction_id` of its actions to NULL (the actions themselves are
/// kept; they carry their own actor, request id and correlation id).
///
/// # The partitioned layout
///
/// There the purge retires whole partitions and deletes rows only in the boundary
/// partition: see [`purge_partitions`](crate::purge_partitions), which also reports them.
pub async fn purge_with_progress(
    pool: &PgPool,
    install: &InstallOptions,
    policy: &RetentionPolicy,
    options: &PurgeOptions,
    mut on_batch: impl FnMut(&PurgeProgress),
) -> Result<PurgeReport> {
    validate(options)?;
    if !options.dry_run && !policy.enabled {
        return Err(Error::RetentionDisabled);
    }
    if let crate::partition::StorageLayout::Partitioned { .. } =
        crate::partition::storage_layout(pool, install).await?
    {
        return crate::partition::purge_partitions(pool, install, policy, options, on_batch)
            .await
            .map(|r| r.purge);
    }
    let mut conn = pool.acquire().await?;
    let cutoff = resolve_cutoff(&mut conn, policy, options.cutoff).await?;
    let mut report = purge_rows(&mut conn, install, policy, options, cutoff, &mut on_batch).await?;
    if !options.dry_run {
        report.purged_seals = crate::seal::record_purged_seals(&mut conn, &install.schema).await?;
    }
    Ok(report)
}

/// The row-deleting purge of changes captured before `cutoff` (the whole purge on the plain
/// layout; the boundary partition's part on the partitioned one).
pub(crate) async fn purge_rows(
    conn: &mut sqlx::PgConnection,
    install: &InstallOptions,
    policy: &RetentionPolicy,
    options: &PurgeOptions,
    cutoff: DateTime<Utc>,
    on_batch: &mut impl FnMut(&PurgeProgress),
) -> Result<PurgeReport> {
    let schema = &install.schema;
    let delete_empty = policy.delete_empty_transactions;
    let mut report = PurgeReport {
        cutoff,
        dry_run: options.dry_run,
        deleted_changes: 0,
        deleted_transactions: 0,
        batches: 0,
        complete: true,
        purged_seals: 0,
    };
    if options.dry_run {
        let (changes, transactions): (i64, i64) = sqlx::query_as(sql::in_schema(COUNT, schema))
            .bind(cutoff)
            .bind(delete_empty)
            .fetch_one(&mut *conn)
            .await?;
        report.deleted_changes = changes as u64;
        report.deleted_transactions = transactions as u64;
        return Ok(report);
    }
    loop {
        if options.max_batches.is_some_and(|max| report.batches >= max) {
            report.complete = !sqlx::query_scalar::<_, bool>(sql::in_schema(REMAINING, schema))
                .bind(cutoff)
                .fetch_one(&mut *conn)
                .await?;
            break;
        }
        let (picked, changes, transactions): (i64, i64, i64) =
            sqlx::query_as(sql::in_schema(BATCH, schema))
                .bind(cutoff)
                .bind(i64::from(options.batch_size))
                .bind(delete_empty)
                .fetch_one(&mut *conn)
                .await?;
        if picked == 0 {
            break;
        }
        report.batches += 1;
        report.deleted_changes += changes as u64;
        report.deleted_transactions += transactions as u64;
        let progress = PurgeProgress {
            batch: report.batches,
            changes: changes as u64,
            transactions: transactions as u64,
            total_changes: report.deleted_changes,
            total_transactions: report.deleted_transactions,
        };
        tracing::info!(
            target: "threadline::retention",
            batch = progress.batch,
            deleted_changes = progress.changes,
            deleted_transactions = progress.transactions,
            total_changes = progress.total_changes,
            total_transactions = progress.total_transactions,
            cutoff = %cutoff,
            "threadline retention purge batch"
        );
        on_batch(&progress);
    }
    Ok(report)
}

pub(crate) fn validate(options: &PurgeOptions) -> Result<()> {
    if options.batch_size == 0 || options.batch_size > MAX_PURGE_BATCH_SIZE {
        return Err(Error::invalid(
            "batch_size",
            format!(
                "{} is out of range; use 1 to {MAX_PURGE_BATCH_SIZE} (default {DEFAULT_PURGE_BATCH_SIZE})",
                options.batch_size
            ),
        ));
    }
    if options.max_batches == Some(0) {
        return Err(Error::invalid(
            "max_batches",
            "0 would delete nothing; use at least 1, or leave it unset to run to completion",
        ));
    }
    Ok(())
}

/// The policy cutoff from the database clock, or the requested one when it is not newer.
pub(crate) async fn resolve_cutoff(
    conn: &mut sqlx::PgConnection,
    policy: &RetentionPolicy,
    requested: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *conn)
        .await?;
    let window = TimeDelta::from_std(policy.window)
        .map_err(|_| Error::invalid("retention window", "too long"))?;
    let newest = now - window;
    match requested {
        None => Ok(newest),
        Some(cutoff) if cutoff <= newest => Ok(cutoff),
        Some(cutoff) => Err(Error::invalid(
            "cutoff",
            format!(
                "{} is newer than the retention policy allows; use {} (now minus the {}-second window) \
                 or earlier, or omit the cutoff to use the policy's",
                cutoff.to_rfc3339(),
                newest.to_rfc3339(),
                policy.window_seconds()
            ),
        )),
    }
}
