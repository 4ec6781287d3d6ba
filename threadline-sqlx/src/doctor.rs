//! `doctor`: health checks of an installed audit trail, each finding with its fix.

use std::collections::BTreeMap;

use sqlx::PgPool;
use threadline_core::{
    Config, CoverageStatus, Finding, InstallManifest, InstallOptions, Severity, TableName,
};

use crate::coverage::trigger_coverage;
use crate::error::Result;
use crate::sql;

/// Options for [`doctor`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DoctorOptions {
    /// The role the application connects as, for the privilege check (default: the role
    /// doctor connects as).
    pub app_role: Option<String>,
}

impl DoctorOptions {
    /// Checks privileges of `role` instead of the connecting role.
    #[must_use]
    pub fn app_role(mut self, role: impl Into<String>) -> Self {
        self.app_role = Some(role.into());
        self
    }
}

/// Runs every health check and returns the findings in check order:
///
/// * `install`: the audit tables, their columns and the shared functions exist and match
///   this version's install SQL;
/// * `indexes`: the install's indexes exist and are valid;
/// * `coverage`: expected tables are covered; no capture is disabled or stale (compared with
///   the policy stored with each capture, or threadline.toml's for capture generated before
///   policies were stored);
/// * `capture_policy`: threadline.toml's `[capture.tables]` sections agree with the policies
///   stored with the captures they name (a warning naming the differing columns), and every
///   stored policy can be read;
/// * `replication_role`: `session_replication_role` is not `replica` here, nor set so for a
///   role or this database (triggers do not fire in replica mode);
/// * `privileges`: whether the application role can write the audit tables directly (a
///   warning: it could forge or erase the trail; see the hardened install);
/// * `orphans`: changes whose transaction row is gone;
/// * `unattributed`: transactions of the last 24 hours with no actor at all, i.e. writes made
///   outside any Threadline context (a warning: raw SQL on the pool, `pool.begin()`, `psql`);
/// * `partitions` (partitioned layout only): a `DEFAULT` partition holds rows, or fewer
///   than `[storage] premake` partitions lie ahead of now.
///
/// Any [`Severity::Error`] means changes may go uncaptured or the trail is damaged.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{Config, DoctorOptions, InstallOptions, Severity, doctor};
/// let findings = doctor(&pool, &InstallOptions::default(), &Config::default(), &DoctorOptions::default()).await?;
/// for f in findings.iter().filter(|f| f.severity != Severity::Ok) {
///     println!("{} {}: {} (fix: {})", f.severity, f.check, f.message, f.fix.as_deref().unwrap_or(""));
/// }
/// # Ok(()) }
/// ```
pub async fn doctor(
    pool: &PgPool,
    install: &InstallOptions,
    config: &Config,
    options: &DoctorOptions,
) -> Result<Vec<Finding>> {
    // The manifest follows the layout that is installed, whatever the config says.
    let layout = crate::partition::storage_layout(pool, install).await?;
    let partitioned = matches!(layout, crate::partition::StorageLayout::Partitioned { .. });
    let mut effective = install.clone();
    effective.partitioning = match layout {
        crate::partition::StorageLayout::Partitioned { interval } => {
            Some(interval.or(install.partitioning).unwrap_or_default())
        }
        _ => None,
    };
    let install = &effective;
    let manifest = InstallManifest::of(install);
    let mut findings = Vec::new();
    let installed = check_install(pool, install, &manifest, &mut findings).await?;
    if installed {
        check_indexes(pool, install, &manifest, &mut findings).await?;
    }
    check_coverage(pool, install, config, &mut findings).await?;
    check_capture_policy(pool, install, config, &mut findings).await?;
    check_replication_role(pool, &mut findings).await?;
    if installed {
        check_privileges(pool, install, &manifest, options, &mut findings).await?;
        check_orphans(pool, install, &mut findings).await?;
        check_unattributed(pool, install, &mut findings).await?;
        if partitioned {
            let premake = config.storage_settings()?.premake;
            crate::partition::check_partitions(pool, install, premake, &mut findings).await?;
        }
    }
    Ok(findings)
}

/// The command that brings the shared objects up to date.
fn reinstall(install: &InstallOptions) -> String {
    let schema = if install.schema.as_str() == threadline_core::DEFAULT_SCHEMA {
        String::new()
    } else {
        format!(" --schema {}", install.schema.as_str())
    };
    format!(
        "apply this version's install SQL, which is idempotent: threadline install --stdout{schema} | psql \"$DATABASE_URL\" (with the same --owner-role in hardened mode)"
    )
}

/// Returns whether the audit tables exist.
async fn check_install(
    pool: &PgPool,
    install: &InstallOptions,
    manifest: &InstallManifest,
    findings: &mut Vec<Finding>,
) -> Result<bool> {
    let schema = install.schema.as_str();
    let names: Vec<&str> = manifest.tables.iter().map(|(t, _)| t.as_str()).collect();
    let tables: BTreeMap<String, Vec<String>> = sqlx::query_as(
        "SELECT c.relname::text, array_agg(a.attname::text ORDER BY a.attnum)
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname = $1 AND c.relname = ANY ($2) AND c.relkind IN ('r', 'p')
         GROUP BY c.relname",
    )
    .bind(schema)
    .bind(&names)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let fix = reinstall(install);
    if tables.is_empty() {
        findings.push(Finding::problem(
            "install",
            Severity::Error,
            format!("Threadline is not installed in schema {schema:?}: no audit tables"),
            "run `threadline install` and apply the migration (`sqlx migrate run`), or pass --schema / set `schema` in threadline.toml if it lives elsewhere",
        ));
        return Ok(false);
    }
    let before = findings.len();
    for (table, columns) in &manifest.tables {
        match tables.get(table) {
            None => findings.push(Finding::problem(
                "install",
                Severity::Error,
                format!("audit table {schema}.{table} is missing"),
                fix.clone(),
            )),
            Some(found) => {
                let missing: Vec<&str> = columns
                    .iter()
                    .filter(|c| !found.contains(c))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    findings.push(Finding::problem(
                        "install",
                        Severity::Error,
                        format!(
                            "{schema}.{table} lacks column(s) {} (installed by an older version)",
                            missing.join(", ")
                        ),
                        "add them as in `threadline install --stdout` (CREATE TABLE IF NOT EXISTS does not alter an existing table)",
                    ));
                }
            }
        }
    }
    let op_checks: Vec<(String, String)> = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = to_regclass($1) AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%op%'",
    )
    .bind(format!("{}.audit_changes", install.schema))
    .fetch_all(pool)
    .await?;
    for (name, def) in &op_checks {
        let refused: Vec<&str> = ["'snapshot'", "'truncate'"]
            .into_iter()
            .filter(|op| !def.contains(op))
            .collect();
        if refused.is_empty() {
            continue;
        }
        findings.push(Finding::problem(
            "install",
            Severity::Error,
            format!(
                "{schema}.audit_changes check {name} does not allow op {} (current installs have no check on op): {def}",
                refused.join(", ")
            ),
            format!(
                "ALTER TABLE {}.audit_changes DROP CONSTRAINT {};",
                install.schema,
                threadline_core::quote_ident(name)
            ),
        ));
    }
    let function_names: Vec<&str> = manifest.functions.iter().map(|(f, _)| f.as_str()).collect();
    let functions: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.proname::text, p.prosrc FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1 AND p.proname = ANY ($2)",
    )
    .bind(schema)
    .bind(&function_names)
    .fetch_all(pool)
    .await?;
    for (name, body) in &manifest.functions {
        let found: Vec<&String> = functions
            .iter()
            .filter(|(f, _)| f == name)
            .map(|(_, b)| b)
            .collect();
        let problem = if found.is_empty() {
            "is missing"
        } else if !found.contains(&body) {
            "differs from this version's install SQL (installed by another version, or edited)"
        } else {
            continue;
        };
        findings.push(Finding::problem(
            "install",
            Severity::Error,
            format!("function {schema}.{name} {problem}"),
            fix.clone(),
        ));
    }
    if findings.len() == before {
        findings.push(Finding::ok(
            "install",
            format!(
                "audit schema {schema:?} present and current ({} tables, {} functions)",
                manifest.tables.len(),
                manifest.functions.len()
            ),
        ));
    }
    Ok(true)
}

async fn check_indexes(
    pool: &PgPool,
    install: &InstallOptions,
    manifest: &InstallManifest,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let found: BTreeMap<String, bool> = sqlx::query_as(
        "SELECT c.relname::text, i.indisvalid FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = ANY ($2)",
    )
    .bind(install.schema.as_str())
    .bind(&manifest.indexes)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let before = findings.len();
    for index in &manifest.indexes {
        let qualified = format!("{}.{}", install.schema, threadline_core::quote_ident(index));
        match found.get(index) {
            None => findings.push(Finding::problem(
                "indexes",
                Severity::Error,
                format!("index {qualified} is missing, so audit queries and retention scan whole tables"),
                format!("{}; on a busy database, run its CREATE INDEX from that SQL by hand with CONCURRENTLY", reinstall(install)),
            )),
            Some(false) => findings.push(Finding::problem(
                "indexes",
                Severity::Error,
                format!("index {qualified} is invalid (a failed CREATE INDEX CONCURRENTLY?) and is not used"),
                format!("REINDEX INDEX CONCURRENTLY {qualified};"),
            )),
            Some(true) => {}
        }
    }
    if findings.len() == before {
        findings.push(Finding::ok(
            "indexes",
            format!(
                "all {} install indexes exist and are valid",
                manifest.indexes.len()
            ),
        ));
    }
    Ok(())
}

async fn check_coverage(
    pool: &PgPool,
    install: &InstallOptions,
    config: &Config,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let coverage = trigger_coverage(pool, install, config).await?;
    let expected = config.expected_tables()?;
    let checked = threadline_core::check_expected(&coverage, &expected);
    let before = findings.len();
    let mut reported: Vec<&TableName> = Vec::new();
    for t in checked.iter().chain(
        coverage
            .iter()
            .filter(|c| matches!(c.status, CoverageStatus::Disabled | CoverageStatus::Stale)),
    ) {
        if t.status == CoverageStatus::Covered || reported.contains(&&t.table) {
            continue;
        }
        reported.push(&t.table);
        findings.push(Finding::problem(
            "coverage",
            Severity::Error,
            format!(
                "{} is {}: {}",
                t.table.display_name(),
                t.status,
                t.detail.as_deref().unwrap_or("")
            ),
            t.fix.clone().unwrap_or_default(),
        ));
    }
    if expected.is_empty() {
        findings.push(Finding::problem(
            "coverage",
            Severity::Warning,
            "no [coverage] expected_tables in threadline.toml, so a table that should be audited but is not goes unnoticed",
            "list the audited tables under [coverage] expected_tables = [...]",
        ));
    }
    if findings.len() == before {
        let covered = coverage
            .iter()
            .filter(|c| c.status == CoverageStatus::Covered)
            .count();
        let uncovered = coverage.len() - covered;
        findings.push(Finding::ok(
            "coverage",
            format!(
                "{} expected tables covered; {covered} tables captured, {uncovered} without capture",
                expected.len()
            ),
        ));
    }
    Ok(())
}

async fn check_capture_policy(
    pool: &PgPool,
    install: &InstallOptions,
    config: &Config,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let before = findings.len();
    let captured = crate::stored_capture_policies(pool, install).await?;
    for c in &captured {
        if let Some(Err(e)) = &c.policy {
            findings.push(Finding::problem(
                "capture_policy",
                Severity::Warning,
                format!("{}: {e}", c.table.display_name()),
                format!(
                    "run `threadline gen-triggers --tables {}` and apply the SQL",
                    c.table.display_name()
                ),
            ));
        }
    }
    for drift in crate::policy_drift(pool, install, config).await? {
        let name = drift.table.display_name();
        let differences: Vec<String> = drift.differences.iter().map(ToString::to_string).collect();
        findings.push(Finding::problem(
            "capture_policy",
            Severity::Warning,
            format!(
                "threadline.toml's policy for {name} differs from the one its capture was generated with (stored in the database, and what capture does): {}",
                differences.join("; ")
            ),
            format!(
                "make [capture.tables] for {name} in threadline.toml match, or, if the file is right, run `threadline gen-triggers --tables {name}` and apply the SQL"
            ),
        ));
    }
    if findings.len() == before {
        let legacy = captured.iter().filter(|c| c.policy.is_none()).count();
        let mut message = format!(
            "{} captured tables carry their capture policy, and threadline.toml agrees with those it names",
            captured.len() - legacy
        );
        if legacy > 0 {
            message.push_str(&format!(
                "; {legacy} were captured before policies were stored and are checked against threadline.toml (regenerate them to store theirs)"
            ));
        }
        findings.push(Finding::ok("capture_policy", message));
    }
    Ok(())
}

async fn check_replication_role(pool: &PgPool, findings: &mut Vec<Finding>) -> Result<()> {
    let current: String = sqlx::query_scalar("SELECT current_setting('session_replication_role')")
        .fetch_one(pool)
        .await?;
    let before = findings.len();
    if current == "replica" {
        findings.push(Finding::problem(
            "replication_role",
            Severity::Error,
            "session_replication_role is replica for this connection: triggers, including capture, do not fire",
            "find where it is set (postgresql.conf, ALTER ROLE / ALTER DATABASE ... SET, PGOPTIONS) and reset it to origin",
        ));
    }
    let settings: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT r.rolname::text, d.datname::text FROM pg_db_role_setting s
         LEFT JOIN pg_roles r ON r.oid = s.setrole
         LEFT JOIN pg_database d ON d.oid = s.setdatabase
         WHERE (s.setdatabase = 0 OR d.datname = current_database())
           AND 'session_replication_role=replica' = ANY (s.setconfig)",
    )
    .fetch_all(pool)
    .await?;
    for (role, database) in settings {
        let (scope, reset) = match (&role, &database) {
            (Some(r), Some(d)) => (
                format!("role {r} in database {d}"),
                format!(
                    "ALTER ROLE {} IN DATABASE {} RESET session_replication_role;",
                    q(r),
                    q(d)
                ),
            ),
            (Some(r), None) => (
                format!("role {r}"),
                format!("ALTER ROLE {} RESET session_replication_role;", q(r)),
            ),
            (None, Some(d)) => (
                format!("database {d}"),
                format!("ALTER DATABASE {} RESET session_replication_role;", q(d)),
            ),
            (None, None) => continue,
        };
        findings.push(Finding::problem(
            "replication_role",
            Severity::Error,
            format!(
                "session_replication_role = replica is set for {scope}: its sessions bypass capture"
            ),
            reset,
        ));
    }
    if findings.len() == before {
        findings.push(Finding::ok(
            "replication_role",
            format!("session_replication_role is {current}, and no role or database sets replica"),
        ));
    }
    Ok(())
}

fn q(name: &str) -> String {
    threadline_core::quote_ident(name)
}

async fn check_privileges(
    pool: &PgPool,
    install: &InstallOptions,
    manifest: &InstallManifest,
    options: &DoctorOptions,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let role = match &options.app_role {
        Some(r) => r.clone(),
        None => {
            sqlx::query_scalar("SELECT current_user::text")
                .fetch_one(pool)
                .await?
        }
    };
    let superuser: Option<bool> =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = $1")
            .bind(&role)
            .fetch_optional(pool)
            .await?;
    let Some(superuser) = superuser else {
        findings.push(Finding::problem(
            "privileges",
            Severity::Error,
            format!("role {role:?} does not exist"),
            "pass --app-role with the role the application connects as",
        ));
        return Ok(());
    };
    let hardened = format!(
        "use the hardened install so only an owner role writes the trail: threadline install --owner-role threadline_owner --reader-role {role} (guides/security.md)"
    );
    if superuser {
        findings.push(Finding::problem(
            "privileges",
            Severity::Warning,
            format!("role {role} is a superuser: it can rewrite the audit tables, disable triggers and switch to replica mode"),
            format!("connect the application as a role without SUPERUSER, then {hardened}"),
        ));
        return Ok(());
    }
    let mut writable = Vec::new();
    for (table, _) in &manifest.tables {
        let privileges: Vec<String> = sqlx::query_scalar(
            "SELECT p FROM unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p
             WHERE has_table_privilege($1, $2, p)",
        )
        .bind(&role)
        .bind(format!("{}.{}", install.schema, q(table)))
        .fetch_all(pool)
        .await?;
        if !privileges.is_empty() {
            writable.push(format!("{} on {table}", privileges.join(", ")));
        }
    }
    if writable.is_empty() {
        findings.push(Finding::ok(
            "privileges",
            format!("role {role} cannot write the audit tables directly"),
        ));
    } else {
        findings.push(Finding::problem(
            "privileges",
            Severity::Warning,
            format!(
                "role {role} can write the audit tables directly ({}), so it can forge or erase the trail",
                writable.join("; ")
            ),
            hardened,
        ));
    }
    Ok(())
}

const ORPHANS: &str = "SELECT (SELECT count(*) FROM @S.audit_changes c
        WHERE NOT EXISTS (SELECT 1 FROM @S.audit_transactions t WHERE t.id = c.transaction_id)),
    ARRAY(SELECT DISTINCT c.transaction_id FROM @S.audit_changes c
        WHERE NOT EXISTS (SELECT 1 FROM @S.audit_transactions t WHERE t.id = c.transaction_id)
        ORDER BY 1 LIMIT 5)";

async fn check_orphans(
    pool: &PgPool,
    install: &InstallOptions,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let (count, sample): (i64, Vec<i64>) = sqlx::query_as(sql::in_schema(ORPHANS, &install.schema))
        .fetch_one(pool)
        .await?;
    if count == 0 {
        findings.push(Finding::ok(
            "orphans",
            "every change has its transaction row",
        ));
        return Ok(());
    }
    let ids: Vec<String> = sample.iter().map(i64::to_string).collect();
    let s = &install.schema;
    findings.push(Finding::problem(
        "orphans",
        Severity::Error,
        format!(
            "{count} changes have no transaction row (e.g. transaction ids {}): capture always writes that row first, so it was deleted or the changes were written by hand",
            ids.join(", ")
        ),
        format!(
            "investigate who deleted them (the trail lost its actor and context); list them with SELECT * FROM {s}.audit_changes c WHERE NOT EXISTS (SELECT 1 FROM {s}.audit_transactions t WHERE t.id = c.transaction_id)"
        ),
    ));
    Ok(())
}

/// Transactions of the last day without any actor. A Threadline context always sets one (the
/// anonymous actor when it has none), so a NULL actor means the write bypassed the context.
/// The day starts at the first change captured in it (the `captured_at` index), and the
/// transactions from there on are a primary-key range: no scan of the whole table.
const UNATTRIBUTED: &str = "SELECT count(*), max(t.id) FROM @S.audit_transactions t
    WHERE t.actor_ref IS NULL AND t.id >= (SELECT c.transaction_id FROM @S.audit_changes c
        WHERE c.captured_at > now() - interval '1 day' ORDER BY c.captured_at LIMIT 1)";

async fn check_unattributed(
    pool: &PgPool,
    install: &InstallOptions,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let (count, latest): (i64, Option<i64>) =
        sqlx::query_as(sql::in_schema(UNATTRIBUTED, &install.schema))
            .fetch_one(pool)
            .await?;
    let Some(latest) = latest.filter(|_| count > 0) else {
        findings.push(Finding::ok(
            "unattributed",
            "every transaction of the last 24 hours carries an actor",
        ));
        return Ok(());
    };
    let s = &install.schema;
    findings.push(Finding::problem(
        "unattributed",
        Severity::Warning,
        format!(
            "{count} transactions of the last 24 hours (latest: audit transaction {latest}) have no actor: they were written outside any Threadline context, e.g. through the pool directly or pool.begin()"
        ),
        format!(
            "begin such transactions with begin_with_context(&ctx) or call tx.with_context / tx.with_actor; for intended maintenance (migrations, psql) run SET LOCAL threadline.actor_ref = '{{\"type\":\"system\",\"id\":\"maintenance\"}}' first; list them with SELECT * FROM {s}.audit_transactions WHERE actor_ref IS NULL ORDER BY id DESC"
        ),
    ));
    Ok(())
}
