//! Threadline for sqlx: everything that talks to PostgreSQL.
//!
//! * [`install`] creates the audit schema; [`audit_table`] attaches capture triggers.
//! * [`TransactionExt`] sets the actor and context on a transaction you already began
//!   (`tx.with_actor(&actor)`); [`PoolExt::begin_with_context`] begins the transaction and
//!   sets the context in one round trip. Semantic actions are recorded through the handle
//!   (`threadline.on(&mut *tx).record_action(..)`).
//! * [`Threadline`] is the one handle: it carries the pool, the audit schema and the
//!   [`StatementMode`] (unnamed statements behind PgBouncer in transaction mode), explores the
//!   trail (`history`, `as_of`, `timeline`, `actor_history`, `transaction`, `count`), records
//!   actions, and does the same on a connection you hold with [`Threadline::on`].
//! * [`RequestTransaction`] and [`RequestAction`] are what the web crates' `AuditedTx` and
//!   `#[audited]` are made of.
//!
//! ```no_run
//! use threadline_sqlx::{ActorRef, InstallOptions, TableCapture, TransactionExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = sqlx::PgPool::connect("postgres://localhost/app").await?;
//! let install = InstallOptions::default();
//! threadline_sqlx::install(&pool, &install).await?;
//! threadline_sqlx::audit_table(&pool, &install, &"posts".parse()?, &TableCapture::default()).await?;
//!
//! let mut tx = pool.begin().await?;
//! tx.with_actor(&ActorRef::user("42")?).await?;
//! sqlx::query("INSERT INTO posts (title) VALUES ('Hello')").execute(&mut *tx).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

mod action;
mod archive;
mod capture_policy;
mod context;
mod coverage;
mod doctor;
mod erase;
mod error;
mod export;
mod install;
mod partition;
mod pooling;
mod request;
mod retention;
mod revert;
mod seal;
mod snapshot;
mod sql;
mod threadline;

pub use action::current_audit_transaction_id;
pub use archive::{
    ArchiveBatch, ArchiveSession, ArchiveUnit, ArchivedChange, ArchivedTransaction, DroppedUnit,
};
pub use capture_policy::{
    PolicyDrift, StoredCapture, policy_drift, stored_capture_policies, stored_capture_policy,
};
pub use context::{ConnectionExt, PoolExt, TransactionExt};
pub use coverage::{
    SchemaTable, assert_capture_ready, schema_tables, trigger_coverage, verify_coverage,
};
pub use doctor::{DoctorOptions, doctor};
pub use erase::{ERASE_ACTION, EraseOptions, ErasePlan, EraseStep, Erased};
pub use error::{Error, Result};
pub use export::{
    DEFAULT_EXPORT_MAX_ROWS, EXPORT_PAGE_SIZE, Export, ExportOptions, MAX_EXPORT_MAX_ROWS,
};
pub use install::{TableInfo, audit_table, describe_table, install, plan_capture};
pub use partition::{
    ConvertOptions, ConvertReport, ConvertStep, ConvertedPartition, CreatedPartition,
    EnsureOptions, EnsureReport, PartitionInfo, PartitionPurgeReport, RetiredPartitionReport,
    StorageLayout, convert_to_partitioned, ensure_partitions, list_partitions, purge_partitions,
    storage_layout,
};
pub use pooling::StatementMode;
pub use request::{ActionLink, RequestAction, RequestTransaction};
pub use retention::{
    DEFAULT_PURGE_BATCH_SIZE, MAX_PURGE_BATCH_SIZE, PurgeOptions, PurgeProgress, PurgeReport,
    purge, purge_with_progress,
};
pub use revert::{PlannedRevert, Revert, RevertOutcome};
pub use seal::{
    ErasedChange, Seal, SealOutcome, SealProblem, SealVerification, record_purged_seals,
};
pub use snapshot::{DEFAULT_SNAPSHOT_BATCH_SIZE, SnapshotOptions, SnapshotReport, snapshot_table};
pub use threadline::{IntoTableName, Threadline, ThreadlineConn, TransactionDetail};
pub use threadline_core::partition::{PartitionInterval, RetiredPartition};
pub use threadline_core::query::{
    ActivityBucket, ActivityWindow, AsOf, Cursor, CursorError, Page, PageOf, PreviousImage,
    PrimaryKey, QueryError, TimelineFilter,
};
pub use threadline_core::revert::{
    LaterChange, RevertError, RevertPlan, RevertStep, RevertTarget, StepAction, StepStatus,
};
pub use threadline_core::{
    ActionOptions, ActionStatus, AuditAction, MAX_ACTION_FIELD_BYTES, MAX_ACTION_NAME_BYTES,
    validate_action_name,
};
pub use threadline_core::{
    ActorRef, ActorType, AuditChange, AuditContext, AuditTransaction, CSV_HEADER, CapturePlan,
    ChangeOp, Config, CoverageStatus, DiffOptions, DiffValue, ExportFormat, ExportRecord,
    FieldDiff, Finding, Ident, InstallOptions, JobContext, RetentionPolicy, Severity, TableCapture,
    TableCoverage, TableName, TraceId, TruncateCapture, change_diff, change_diff_with,
};
pub use threadline_core::{PolicyDifference, StoredPolicyError};
