//! Capture coverage from the catalog (SPEC §7), and the capture-ready check of continuity.

use std::collections::BTreeMap;

use sqlx::PgPool;
use threadline_core::sql::TRIGGER_NAMES;
use threadline_core::{
    AUDIT_TABLES, Config, CoverageStatus, Ident, InstallOptions, ObservedTrigger, SEAL_TABLES,
    TableCoverage, TableName, check_expected, classify_coverage, coverage_policy,
};

use crate::error::{Error, Result};
use crate::install::plan_capture;

const TABLES: &str = "SELECT n.nspname::text, c.relname::text, t.tgname::text, t.tgenabled::text,
        pn.nspname::text, p.proname::text, obj_description(p.oid, 'pg_proc')
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal AND t.tgname = ANY ($1)
    LEFT JOIN pg_proc p ON p.oid = t.tgfoid
    LEFT JOIN pg_namespace pn ON pn.oid = p.pronamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
      AND NOT (n.nspname = $2 AND c.relname = ANY ($3))
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2, 3";

type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The capture state of every table in every non-system schema (partitions and tables owned
/// by extensions are left out, and so are the audit tables), sorted by schema and name.
///
/// A table is *stale* when its capture function differs from what
/// [`gen-triggers`](threadline_core::CapturePlan) would produce now from the catalog and the
/// capture policy stored with it (in its function's comment, written by `gen-triggers` and
/// [`audit_table`](crate::audit_table), whether the policy came from threadline.toml, flags
/// or code). Capture generated before policies were stored is compared with `config`'s
/// `[capture.tables]` policy instead. [`policy_drift`](crate::policy_drift) reports where
/// `config` disagrees with a stored policy.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{Config, CoverageStatus, InstallOptions, trigger_coverage};
/// for t in trigger_coverage(&pool, &InstallOptions::default(), &Config::default()).await? {
///     if t.status != CoverageStatus::Covered {
///         println!("{}: {}", t.table.display_name(), t.status);
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn trigger_coverage(
    pool: &PgPool,
    install: &InstallOptions,
    config: &Config,
) -> Result<Vec<TableCoverage>> {
    let rows: Vec<Row> = sqlx::query_as(TABLES)
        .bind(TRIGGER_NAMES.as_slice())
        .bind(install.schema.as_str())
        .bind(trail_tables())
        .fetch_all(pool)
        .await?;
    let mut tables: BTreeMap<(String, String), Vec<ObservedTrigger>> = BTreeMap::new();
    for (schema, name, trigger, enabled, fschema, fname, comment) in rows {
        let triggers = tables.entry((schema, name)).or_default();
        if let (Some(name), Some(enabled), Some(function_schema), Some(function_name)) =
            (trigger, enabled, fschema, fname)
        {
            triggers.push(ObservedTrigger {
                name,
                enabled: enabled.chars().next().unwrap_or('D'),
                function_schema,
                function_name,
                function_comment: comment,
            });
        }
    }
    let mut out = Vec::with_capacity(tables.len());
    for ((schema, name), triggers) in tables {
        let table = TableName::new(Ident::new(schema)?, Ident::new(name)?);
        let plan = if triggers.is_empty() {
            None
        } else {
            let policy = coverage_policy(&triggers, config.table_policy(&table));
            match plan_capture(pool, install, &table, &policy).await {
                Ok(plan) => Some(Ok(plan)),
                Err(Error::Core(threadline_core::Error::Capture(e))) => Some(Err(e)),
                Err(e) => return Err(e),
            }
        };
        out.push(classify_coverage(
            &table,
            &triggers,
            plan.as_ref().map(Result::as_ref),
        ));
    }
    Ok(out)
}

/// The expected tables with their status (sorted, deduplicated; see
/// [`check_expected`](threadline_core::check_expected)): anything but
/// [`CoverageStatus::Covered`] is a violation (missing, uncovered, disabled or stale).
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool, config: threadline_sqlx::Config) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{CoverageStatus, InstallOptions, verify_coverage};
/// let expected = config.expected_tables()?;
/// let report = verify_coverage(&pool, &InstallOptions::default(), &config, &expected).await?;
/// let violations: Vec<_> = report.iter().filter(|t| t.status != CoverageStatus::Covered).collect();
/// assert!(violations.is_empty(), "{violations:?}");
/// # Ok(()) }
/// ```
pub async fn verify_coverage(
    pool: &PgPool,
    install: &InstallOptions,
    config: &Config,
    expected: &[TableName],
) -> Result<Vec<TableCoverage>> {
    let coverage = trigger_coverage(pool, install, config).await?;
    Ok(check_expected(&coverage, expected))
}

/// Checks that `table` exists and its capture is installed, enabled and current
/// (continuity's "capture ready"). The error says which and how to fix it.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{Config, InstallOptions, assert_capture_ready};
/// assert_capture_ready(&pool, &InstallOptions::default(), &Config::default(), &"posts".parse()?).await?;
/// # Ok(()) }
/// ```
pub async fn assert_capture_ready(
    pool: &PgPool,
    install: &InstallOptions,
    config: &Config,
    table: &TableName,
) -> Result<()> {
    let coverage = verify_coverage(pool, install, config, std::slice::from_ref(table)).await?;
    match coverage.into_iter().next() {
        Some(t) if t.status == CoverageStatus::Covered => Ok(()),
        Some(t) if t.status == CoverageStatus::Missing => {
            Err(Error::TableNotFound(table.display_name()))
        }
        Some(t) => Err(Error::NotCaptureReady {
            table: table.display_name(),
            status: t.status,
            detail: t.explain(),
        }),
        None => Err(Error::TableNotFound(table.display_name())),
    }
}

/// A table of a schema, as [`schema_tables`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaTable {
    /// The table.
    pub table: TableName,
    /// Whether it has a primary key (without one, capture needs `key_columns`).
    pub has_primary_key: bool,
}

const SCHEMA_TABLES: &str = "SELECT c.relname::text,
        EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND NOT (n.nspname = $2 AND c.relname = ANY ($3))
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1";

/// Every table of `schema` that can be audited, sorted by name: plain and partitioned tables,
/// without partitions (capture goes on the parent), tables owned by extensions and the audit
/// tables. A schema that does not exist is [`Error::InvalidInput`], naming the schemas that do.
///
/// ```no_run
/// # async fn run(conn: &mut sqlx::PgConnection) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{Ident, InstallOptions, schema_tables};
/// let public = Ident::new("public").unwrap();
/// for t in schema_tables(conn, &InstallOptions::default(), &public).await? {
///     println!("{} (primary key: {})", t.table.display_name(), t.has_primary_key);
/// }
/// # Ok(()) }
/// ```
pub async fn schema_tables(
    conn: &mut sqlx::PgConnection,
    install: &InstallOptions,
    schema: &Ident,
) -> Result<Vec<SchemaTable>> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema.as_str())
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace
             WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%' ORDER BY 1",
        )
        .fetch_all(&mut *conn)
        .await?;
        return Err(Error::invalid(
            "schema",
            format!(
                "schema {} does not exist; existing schemas: {} (quote mixed case as \"Name\")",
                schema.quoted(),
                schemas.join(", ")
            ),
        ));
    }
    let rows: Vec<(String, bool)> = sqlx::query_as(SCHEMA_TABLES)
        .bind(schema.as_str())
        .bind(install.schema.as_str())
        .bind(trail_tables())
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter()
        .map(|(name, has_primary_key)| {
            let name = Ident::new(name)
                .map_err(|e| Error::invalid("table", format!("unusable table name: {e}")))?;
            Ok(SchemaTable {
                table: TableName::new(schema.clone(), name),
                has_primary_key,
            })
        })
        .collect()
}

/// The tables `install` creates (the trail, seals and erasure records): never audited, never
/// listed as uncovered.
fn trail_tables() -> Vec<&'static str> {
    AUDIT_TABLES.iter().chain(&SEAL_TABLES).copied().collect()
}
