//! The capture policy stored with each table's capture (in its capture function's comment;
//! see [`CaptureComment`](threadline_core::CaptureComment)): reading it, and comparing
//! threadline.toml with it.

use sqlx::PgPool;
use threadline_core::sql::TRIGGER_NAMES;
use threadline_core::{
    CaptureComment, Config, Ident, InstallOptions, PolicyDifference, ResolvedPolicy,
    StoredPolicyError, TableCapture, TableName, policy_differences,
};

use crate::error::{Error, Result};
use crate::install::plan_capture;

/// Every table whose capture triggers run a capture function of the audit schema, with that
/// function's comment (one row per table and function).
pub(crate) const POLICIES: &str =
    "SELECT DISTINCT n.nspname::text, c.relname::text, obj_description(p.oid, 'pg_proc')
    FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_proc p ON p.oid = t.tgfoid
    JOIN pg_namespace pn ON pn.oid = p.pronamespace
    WHERE NOT t.tgisinternal AND t.tgname = ANY ($1) AND pn.nspname = $2
    ORDER BY 1, 2, 3";

/// A captured table and the policy stored with its capture.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCapture {
    /// The table.
    pub table: TableName,
    /// The policy its capture was generated with: `None` when the capture was generated
    /// before policies were stored (regenerate it to store one), an error when the stored
    /// policy cannot be read.
    pub policy: Option<std::result::Result<TableCapture, StoredPolicyError>>,
}

/// Every captured table with the policy stored with its capture, sorted by schema and name.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{InstallOptions, stored_capture_policies};
/// for captured in stored_capture_policies(&pool, &InstallOptions::default()).await? {
///     if let Some(Ok(policy)) = &captured.policy {
///         println!("{}: masks {:?}", captured.table.display_name(), policy.mask);
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn stored_capture_policies(
    pool: &PgPool,
    install: &InstallOptions,
) -> Result<Vec<StoredCapture>> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(POLICIES)
        .bind(TRIGGER_NAMES.as_slice())
        .bind(install.schema.as_str())
        .fetch_all(pool)
        .await?;
    let mut out: Vec<StoredCapture> = Vec::with_capacity(rows.len());
    for (schema, name, comment) in rows {
        let table = TableName::new(Ident::new(schema)?, Ident::new(name)?);
        let policy = comment
            .as_deref()
            .and_then(|c| CaptureComment::parse(c).policy);
        match out.last_mut() {
            // Triggers running different functions (stale capture): keep a readable policy.
            Some(last) if last.table == table => {
                if !matches!(last.policy, Some(Ok(_))) && policy.is_some() {
                    last.policy = policy;
                }
            }
            _ => out.push(StoredCapture { table, policy }),
        }
    }
    Ok(out)
}

/// The policy stored with `table`'s capture: what its capture masks, excludes and ignores
/// (for tools that must know, such as revert and erasure). `Ok(None)` when the table has no
/// capture, or capture generated before policies were stored; an error when the stored
/// policy cannot be read.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{InstallOptions, stored_capture_policy};
/// let policy = stored_capture_policy(&pool, &InstallOptions::default(), &"users".parse()?).await?;
/// if let Some(policy) = policy {
///     println!("masked: {:?}, excluded: {:?}", policy.mask, policy.exclude);
/// }
/// # Ok(()) }
/// ```
pub async fn stored_capture_policy(
    pool: &PgPool,
    install: &InstallOptions,
    table: &TableName,
) -> Result<Option<TableCapture>> {
    let all = stored_capture_policies(pool, install).await?;
    match all.into_iter().find(|c| &c.table == table) {
        Some(StoredCapture {
            policy: Some(policy),
            ..
        }) => Ok(Some(policy.map_err(threadline_core::Error::from)?)),
        _ => Ok(None),
    }
}

/// The policy `table`'s capture is checked with, and that must redact anything written beside
/// it (snapshot images): the stored one, else `config`'s for capture generated before
/// policies were stored (as [`coverage_policy`](threadline_core::coverage_policy) decides).
pub(crate) async fn capture_policy_of(
    pool: &PgPool,
    install: &InstallOptions,
    config: &Config,
    table: &TableName,
) -> Result<TableCapture> {
    let stored = stored_capture_policies(pool, install)
        .await?
        .into_iter()
        .find(|c| &c.table == table)
        .and_then(|c| c.policy)
        .and_then(std::result::Result::ok);
    Ok(stored.unwrap_or_else(|| config.table_policy(table)))
}

/// A table whose `[capture.tables]` section in threadline.toml makes another policy than the
/// one stored with its capture.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDrift {
    /// The table.
    pub table: TableName,
    /// What differs, list by list.
    pub differences: Vec<PolicyDifference>,
}

/// The tables that threadline.toml (`config`) gives a policy for and whose stored policy
/// differs from it. Tables the file does not name are not compared: their stored policy
/// (set in code, or by flags) is the only one there is. Capture generated before policies
/// were stored has nothing to compare with.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool, config: threadline_sqlx::Config) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{InstallOptions, policy_drift};
/// for drift in policy_drift(&pool, &InstallOptions::default(), &config).await? {
///     for difference in &drift.differences {
///         println!("{}: {difference}", drift.table.display_name());
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn policy_drift(
    pool: &PgPool,
    install: &InstallOptions,
    config: &Config,
) -> Result<Vec<PolicyDrift>> {
    let configured = config.tables()?;
    let mut out = Vec::new();
    for captured in stored_capture_policies(pool, install).await? {
        let (Some(local), Some(Ok(stored))) =
            (configured.get(&captured.table), captured.policy.as_ref())
        else {
            continue;
        };
        let stored = effective(pool, install, &captured.table, stored).await?;
        let local = effective(pool, install, &captured.table, local).await?;
        let differences = policy_differences(&stored, &local);
        if !differences.is_empty() {
            out.push(PolicyDrift {
                table: captured.table,
                differences,
            });
        }
    }
    Ok(out)
}

/// The policy capture would be generated with for `table` (key columns of a deferrable key
/// made explicit, as [`plan_capture`] does), or the policy on its own when it does not fit
/// the table (a column since dropped).
async fn effective(
    pool: &PgPool,
    install: &InstallOptions,
    table: &TableName,
    policy: &TableCapture,
) -> Result<ResolvedPolicy> {
    match plan_capture(pool, install, table, policy).await {
        Ok(plan) => Ok(plan.policy().clone()),
        Err(Error::Core(_) | Error::TableNotFound(_)) => Ok(policy.resolve()?),
        Err(e) => Err(e),
    }
}
