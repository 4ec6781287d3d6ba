//! Baseline snapshots of existing rows (brownfield continuity, SPEC §7).

use sqlx::PgPool;
use threadline_core::{ActorRef, AuditContext, Config, InstallOptions, TableName};

use crate::context::TransactionExt;
use crate::coverage::assert_capture_ready;
use crate::error::{Error, Result};
use crate::install::plan_capture;
use crate::sql;

/// Default rows per snapshot batch.
pub const DEFAULT_SNAPSHOT_BATCH_SIZE: u32 = 1_000;

/// How to run a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotOptions {
    /// Rows per batch; each batch is one short transaction (default 1,000; 1 to 1,000,000).
    pub batch_size: u32,
    /// The context of the transactions that record the snapshot (default: actor
    /// `system:threadline-snapshot`, source `threadline snapshot`).
    pub context: AuditContext,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        let actor = ActorRef::system("threadline-snapshot").expect("valid constant actor");
        Self {
            batch_size: DEFAULT_SNAPSHOT_BATCH_SIZE,
            context: AuditContext::for_actor(actor).with_source("threadline snapshot"),
        }
    }
}

/// What a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SnapshotReport {
    /// Rows read.
    pub scanned: u64,
    /// Rows recorded as `snapshot` changes (the others already had this image in the trail).
    pub recorded: u64,
    /// Batches run.
    pub batches: u32,
}

/// Records every existing row of `table` as an `op = 'snapshot'` change, so `history` and
/// `as_of` have an image of rows that predate capture (`as_of` before the snapshot still
/// reports "before capture began").
///
/// The table must be capture-ready ([`assert_capture_ready`]): its capture is installed,
/// enabled and current. Snapshot images are redacted with the policy stored with the capture
/// (`config`'s for capture generated before policies were stored), exactly like captured
/// ones. Rows are read in key order in batches of `batch_size`, each batch in its own
/// transaction with `options.context`; each row is locked until its batch commits, so a
/// concurrent update is captured after the snapshot row. A row whose latest change already
/// holds the same image is skipped, so rerunning (or resuming after an interruption) records
/// nothing twice. `on_batch` gets the running report after each batch.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{Config, InstallOptions, SnapshotOptions, snapshot_table};
/// let report = snapshot_table(&pool, &InstallOptions::default(), &Config::default(),
///     &"posts".parse()?, &SnapshotOptions::default(), |_| {}).await?;
/// println!("{} of {} rows recorded", report.recorded, report.scanned);
/// # Ok(()) }
/// ```
pub async fn snapshot_table(
    pool: &PgPool,
    install: &InstallOptions,
    config: &Config,
    table: &TableName,
    options: &SnapshotOptions,
    mut on_batch: impl FnMut(&SnapshotReport),
) -> Result<SnapshotReport> {
    if options.batch_size == 0 || options.batch_size > 1_000_000 {
        return Err(Error::invalid(
            "batch_size",
            format!("{} is out of range; use 1 to 1000000", options.batch_size),
        ));
    }
    assert_capture_ready(pool, install, config, table).await?;
    let policy = crate::capture_policy::capture_policy_of(pool, install, config, table).await?;
    let plan = plan_capture(pool, install, table, &policy).await?;
    let statement = plan.snapshot_batch_sql();
    let mut report = SnapshotReport {
        scanned: 0,
        recorded: 0,
        batches: 0,
    };
    let mut after: Option<serde_json::Value> = None;
    loop {
        let mut tx = pool.begin().await?;
        tx.with_context(&options.context).await?;
        sqlx::query(sql::generated(format!(
            "LOCK TABLE {table} IN ACCESS SHARE MODE"
        )))
        .execute(&mut *tx)
        .await?;
        if plan_capture(&mut *tx, install, table, &policy).await? != plan {
            return Err(Error::invalid(
                "table",
                format!(
                    "{} changed (columns or key) during the snapshot; regenerate its capture, then run the snapshot again (it resumes)",
                    table.display_name()
                ),
            ));
        }
        let (scanned, recorded, last): (i64, i64, Option<serde_json::Value>) =
            sqlx::query_as(sql::generated(statement.clone()))
                .bind(&after)
                .bind(i64::from(options.batch_size))
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        if scanned == 0 {
            break;
        }
        report.batches += 1;
        report.scanned += scanned as u64;
        report.recorded += recorded as u64;
        tracing::info!(
            target: "threadline::snapshot",
            table = %table.display_name(),
            batch = report.batches,
            scanned,
            recorded,
            "threadline snapshot batch"
        );
        on_batch(&report);
        if scanned < i64::from(options.batch_size) {
            break;
        }
        after = last;
    }
    Ok(report)
}
