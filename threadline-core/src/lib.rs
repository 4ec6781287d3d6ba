//! Threadline core: the pure part of an audit-trail kit for PostgreSQL.
//!
//! This crate does no I/O. It holds the value types ([`ActorRef`], [`AuditContext`],
//! [`JobContext`], [`TraceId`]), validated identifiers ([`TableName`]), the `threadline.toml`
//! configuration ([`Config`], [`TableCapture`]) and the SQL generators for the install schema
//! ([`install_sql`]) and per-table capture triggers ([`CapturePlan`]); the typed audit rows
//! ([`AuditChange`], [`AuditTransaction`]), their per-field [`change_diff`], and the
//! exploration queries ([`query`]: filters, keyset pages, cursors and SQL).
//!
//! ```
//! use threadline_core::{CapturePlan, Config, Ident, InstallOptions, install_sql};
//!
//! let config = Config::from_toml(r#"
//! [capture.tables.users]
//! exclude = ["password_hash"]
//! mask = ["email"]
//! "#)?;
//! let install = InstallOptions::default();
//! let users = "users".parse()?;
//! let policy = config.table_policy(&users);
//! let plan = CapturePlan::new(&install, users, Some(vec![Ident::new("id")?]), None, &policy)?;
//! let sql = format!("{}\n{}", install_sql(&install), plan.sql());
//! assert!(sql.contains("threadline_capture_users_"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod action;
mod actor;
mod audit;
mod capture_policy;
mod config;
mod context;
mod continuity;
mod coverage;
mod diff;
mod doctor;
mod error;
mod export;
mod headers;
mod ident;
pub mod partition;
pub mod query;
mod redaction;
mod retention;
pub mod revert;
pub mod seal;
pub mod sql;
mod trace;

pub use action::{
    ActionError, ActionOptions, ActionStatus, AuditAction, MAX_ACTION_FIELD_BYTES,
    MAX_ACTION_NAME_BYTES, validate_action_name,
};
pub use actor::{ActorRef, ActorRefError, ActorType, MAX_ACTOR_ID_BYTES};
pub use audit::{AuditChange, AuditTransaction, ChangeOp, UnknownOp};
pub use capture_policy::{
    CaptureComment, PolicyDifference, StoredPolicyError, capture_comment, policy_differences,
    stored_form,
};
pub use config::{CaptureConfig, Config, ConfigError, CoverageConfig, StorageConfig};
pub use context::{AuditContext, JobContext, settings};
pub use continuity::cutover_steps;
pub use coverage::{
    CoverageStatus, ObservedTrigger, TableCoverage, check_expected, classify_coverage,
    coverage_policy,
};
pub use diff::{DiffOptions, DiffValue, FieldDiff, change_diff, change_diff_with};
pub use doctor::{Finding, InstallManifest, Severity};
pub use error::Error;
pub use export::{
    CSV_HEADER, EXPORT_FORMAT_VERSION, ExportFormat, ExportRecord, ExportWriter, canonical_json,
    encode_export, export_timestamp,
};
pub use headers::{
    CORRELATION_ID_HEADER, ContextHeaders, DropReason, DroppedHeader, ExtractedHeaders,
    FORWARDED_FOR_HEADER, HeaderConfigError, IpNet, MAX_HEADER_VALUE_BYTES, REQUEST_ID_HEADER,
    TrustedProxies, sanitize_header_value,
};
pub use ident::{
    DEFAULT_SCHEMA, Ident, IdentError, MAX_IDENT_BYTES, TableName, quote_ident, quote_literal,
};
pub use redaction::{
    DEFAULT_MASK_PLACEHOLDER, DEFAULT_TRUNCATE_ROW_LIMIT, MAX_PLACEHOLDER_CHARS, PolicyError,
    ResolvedPolicy, TableCapture, TruncateCapture,
};
pub use retention::{MAX_RETENTION_DAYS, RetentionError, RetentionPolicy};
pub use sql::{
    AUDIT_TABLES, CaptureError, CapturePlan, InstallOptions, SEAL_TABLES, capture_function_name,
    install_sql,
};
#[cfg(feature = "opentelemetry")]
pub use trace::current_span_trace_id;
pub use trace::{TRACEPARENT_HEADER, TraceContextError, TraceId, TraceParent};
