//! Per-table capture SQL (SPEC §3): one PL/pgSQL function per table and three triggers.
//!
//! * INSERT and DELETE use statement-level triggers with transition tables, so a bulk
//!   statement writes all its audit rows with one `INSERT ... SELECT`.
//! * UPDATE uses a row-level trigger, so PostgreSQL itself pairs each old row with its new
//!   row, even when the update changes the primary key.
//! * Every image is built from `to_jsonb(row)`, so added columns are captured and dropped
//!   columns never break a write. Redaction works on the image and is guarded: when a key or
//!   redacted column disappears (a rename), the shared `threadline_check_shape` function
//!   refuses the write instead of capturing a value unredacted.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::ident::{Ident, TableName, quote_literal};
use crate::redaction::{PolicyError, ResolvedPolicy, TableCapture};
use crate::sql::install::{AUDIT_TABLES, InstallOptions};
use crate::sql::{dollar_tag, fnv1a};

/// Names of the triggers every audited table gets (insert, update, delete).
pub const TRIGGER_NAMES: [&str; 3] = [
    "threadline_capture_insert",
    "threadline_capture_update",
    "threadline_capture_delete",
];

/// Prefix of the stamp written as the capture function's comment.
pub const STAMP_PREFIX: &str = "threadline:capture:v1:";

/// Why capture SQL could not be generated for a table.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// The table is one of Threadline's own audit tables.
    #[error("{0} is a Threadline audit table and can never be audited (it would audit itself)")]
    AuditTable(String),
    /// No primary key and no explicit key columns.
    #[error(
        "table {0} has no primary key; add one (ALTER TABLE ... ADD PRIMARY KEY) or set `key_columns` for it in threadline.toml"
    )]
    NoPrimaryKey(String),
    /// The policy is invalid.
    #[error("invalid capture policy for {table}: {source}")]
    Policy {
        /// The table.
        table: String,
        /// What is wrong.
        source: PolicyError,
    },
}

/// Everything needed to generate capture SQL for one table.
///
/// ```
/// use threadline_core::{CapturePlan, Ident, InstallOptions, TableCapture};
/// let plan = CapturePlan::new(
///     &InstallOptions::default(),
///     "posts".parse().unwrap(),
///     Some(vec![Ident::new("id").unwrap()]),
///     None,
///     &TableCapture::default().mask(["email"]),
/// )?;
/// assert!(plan.sql().contains("CREATE TRIGGER threadline_capture_insert"));
/// # Ok::<(), threadline_core::CaptureError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturePlan {
    schema: Ident,
    owner_role: Option<Ident>,
    table: TableName,
    key: Vec<Ident>,
    key_is_explicit: bool,
    columns: Option<Vec<Ident>>,
    policy: ResolvedPolicy,
}

impl CapturePlan {
    /// Validates a plan.
    ///
    /// `primary_key` is the table's primary key as read from the catalog (`None` when unknown
    /// or absent); `key_columns` in the policy override it. `columns` is the table's current
    /// column list when the database was reachable; then every policy column must exist.
    pub fn new(
        install: &InstallOptions,
        table: TableName,
        primary_key: Option<Vec<Ident>>,
        columns: Option<Vec<Ident>>,
        policy: &TableCapture,
    ) -> Result<Self, CaptureError> {
        if table.schema() == &install.schema && AUDIT_TABLES.contains(&table.name().as_str()) {
            return Err(CaptureError::AuditTable(table.display_name()));
        }
        let policy_error = |source| CaptureError::Policy {
            table: table.display_name(),
            source,
        };
        let policy = policy.resolve().map_err(policy_error)?;
        let (key, key_is_explicit) = match (&policy.key_columns, primary_key) {
            (Some(k), _) => (k.clone(), true),
            (None, Some(k)) if !k.is_empty() => (k, false),
            (None, _) => return Err(CaptureError::NoPrimaryKey(table.display_name())),
        };
        if let Some(k) = key
            .iter()
            .find(|k| policy.exclude.contains(*k) || policy.mask.contains(*k))
        {
            return Err(policy_error(PolicyError::KeyColumnRedacted(
                k.as_str().to_owned(),
            )));
        }
        if let Some(cols) = &columns {
            let existing: BTreeSet<&Ident> = cols.iter().collect();
            let lists: [(&'static str, Vec<&Ident>); 4] = [
                ("key_columns", key.iter().collect()),
                ("exclude", policy.exclude.iter().collect()),
                ("mask", policy.mask.iter().collect()),
                ("except_columns", policy.except.iter().collect()),
            ];
            for (list, names) in lists {
                let missing: Vec<&str> = names
                    .into_iter()
                    .filter(|c| !existing.contains(c))
                    .map(Ident::as_str)
                    .collect();
                if !missing.is_empty() {
                    return Err(policy_error(PolicyError::UnknownColumns {
                        table: table.display_name(),
                        list,
                        columns: missing.join(", "),
                        existing: cols
                            .iter()
                            .map(Ident::as_str)
                            .collect::<Vec<_>>()
                            .join(", "),
                    }));
                }
            }
        }
        Ok(Self {
            schema: install.schema.clone(),
            owner_role: install.owner_role.clone(),
            table,
            key,
            key_is_explicit,
            columns,
            policy,
        })
    }

    /// The audited table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The key columns written to `table_pk`.
    pub fn key(&self) -> &[Ident] {
        &self.key
    }

    /// The validated policy.
    pub fn policy(&self) -> &ResolvedPolicy {
        &self.policy
    }

    /// The capture function's schema-qualified, quoted name.
    pub fn function_name(&self) -> String {
        format!(
            "{}.{}",
            self.schema,
            Ident::new(capture_function_name(&self.table))
                .unwrap_or_else(|_| unreachable!("name is length-limited"))
        )
    }

    /// The stamp stored as the function's comment: changes whenever the generated function would.
    pub fn stamp(&self) -> String {
        format!(
            "{STAMP_PREFIX}{:016x}",
            fnv1a(self.function_sql().as_bytes())
        )
    }

    /// The complete capture SQL: an apply-time guard, the function, its stamp, and the triggers.
    pub fn sql(&self) -> String {
        let t = &self.table;
        let f = self.function_name();
        let mut out = format!(
            "-- Threadline capture for {} (generated by threadline-core; regenerate with `threadline gen-triggers`).\n\n",
            t.display_name()
        );
        out.push_str(&self.guard_sql());
        out.push_str(&self.function_sql());
        let _ = writeln!(
            out,
            "COMMENT ON FUNCTION {f}() IS {};\n",
            quote_literal(&self.stamp())
        );
        out.push_str(&super::harden::capture_hardening(
            self.owner_role.as_ref(),
            &f,
        ));
        for name in TRIGGER_NAMES {
            let _ = writeln!(out, "DROP TRIGGER IF EXISTS {name} ON {t};");
        }
        let _ = write!(
            out,
            "CREATE TRIGGER {} AFTER INSERT ON {t}\n    REFERENCING NEW TABLE AS threadline_new\n    FOR EACH STATEMENT EXECUTE FUNCTION {f}();\n\
             CREATE TRIGGER {} AFTER UPDATE ON {t}\n    FOR EACH ROW EXECUTE FUNCTION {f}();\n\
             CREATE TRIGGER {} AFTER DELETE ON {t}\n    REFERENCING OLD TABLE AS threadline_old\n    FOR EACH STATEMENT EXECUTE FUNCTION {f}();\n",
            TRIGGER_NAMES[0], TRIGGER_NAMES[1], TRIGGER_NAMES[2]
        );
        out
    }

    /// A `DO` block that checks, when the SQL is applied, that the table still has the key and
    /// columns this SQL was generated for.
    fn guard_sql(&self) -> String {
        let name = self.table.display_name();
        let mut referenced: BTreeSet<&Ident> = self.key.iter().collect();
        referenced.extend(&self.policy.exclude);
        referenced.extend(&self.policy.mask);
        referenced.extend(&self.policy.except);
        let key_check = if self.key_is_explicit {
            String::new()
        } else {
            let mut sorted: Vec<&Ident> = self.key.iter().collect();
            sorted.sort();
            format!(
                "    v_pk := ARRAY(SELECT a.attname::text FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = v_rel AND i.indisprimary ORDER BY a.attname);
    IF v_pk IS DISTINCT FROM {expected} THEN
        RAISE EXCEPTION 'threadline: the primary key of % is (%), but this capture SQL was generated for ({shown})',
            {lit}, array_to_string(v_pk, ', ')
            USING HINT = 'regenerate it with threadline gen-triggers --database-url ... (which reads the key), or set key_columns in threadline.toml';
    END IF;
",
                expected = text_array(sorted.iter().copied()),
                shown = sorted.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ").replace('\'', "''"),
                lit = quote_literal(&name),
            )
        };
        let body = format!(
            "DECLARE
    v_rel regclass := to_regclass({rel});
    v_pk text[];
    v_missing text[];
BEGIN
    IF v_rel IS NULL THEN
        RAISE EXCEPTION 'threadline: table % does not exist', {lit}
            USING HINT = 'create the table first, or fix the name passed to --tables';
    END IF;
{key_check}    v_missing := ARRAY(SELECT c FROM unnest({cols}) AS c WHERE NOT EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = v_rel AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped));
    IF cardinality(v_missing) > 0 THEN
        RAISE EXCEPTION 'threadline: table % has no column(s) %', {lit}, array_to_string(v_missing, ', ')
            USING HINT = 'fix the column names in threadline.toml or the gen-triggers flags, then regenerate';
    END IF;
END
",
            rel = quote_literal(&self.table.to_string()),
            lit = quote_literal(&name),
            cols = text_array(referenced.into_iter()),
        );
        let tag = dollar_tag(&body);
        format!("DO {tag}\n{body}{tag};\n\n")
    }

    /// The `CREATE OR REPLACE FUNCTION` statement.
    fn function_sql(&self) -> String {
        let s = &self.schema;
        let p = &self.policy;
        let required: Vec<&Ident> = self
            .key
            .iter()
            .chain(&p.exclude)
            .chain(&p.mask)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let check = |image: &str| {
            format!(
                "{s}.threadline_check_shape({}, {image}, {}, {}, {})",
                quote_literal(&self.table.display_name()),
                text_array(self.key.iter()),
                text_array(p.exclude.iter().chain(&p.mask)),
                match &self.columns {
                    Some(cols) => text_array(cols.iter()),
                    None => "NULL::text[]".to_owned(),
                }
            )
        };
        let required = text_array(required.into_iter());
        let ignored: Vec<&Ident> = p.exclude.iter().chain(&p.except).collect();
        let compared = |image: &str| {
            if ignored.is_empty() {
                image.to_owned()
            } else {
                format!("({image} - {})", text_array(ignored.iter().copied()))
            }
        };
        let placeholder = format!("to_jsonb({}::text)", quote_literal(&p.placeholder));
        let redact = |image: &str| {
            let mut expr = if p.exclude.is_empty() {
                image.to_owned()
            } else {
                format!("({image} - {})", text_array(p.exclude.iter()))
            };
            for m in &p.mask {
                expr = format!(
                    "jsonb_set({expr}, {}, {placeholder}, false)",
                    text_array(std::iter::once(m))
                );
            }
            expr
        };
        let pk = |image: &str| {
            let pairs: Vec<String> = self
                .key
                .iter()
                .map(|k| {
                    format!(
                        "{}, {image} -> {}",
                        quote_literal(k.as_str()),
                        quote_literal(k.as_str())
                    )
                })
                .collect();
            format!("jsonb_build_object({})", pairs.join(", "))
        };
        let changed_from = if p.store_changed_from {
            let value = if p.mask.is_empty() {
                "v_old -> k".to_owned()
            } else {
                format!(
                    "CASE WHEN k = ANY ({}) THEN {placeholder} ELSE v_old -> k END",
                    text_array(p.mask.iter())
                )
            };
            format!("(SELECT jsonb_object_agg(k, {value}) FROM unnest(v_fields) AS k)")
        } else {
            "NULL".to_owned()
        };
        let bulk = |op: &str, transition: &str, column: &str| {
            format!(
                "        INSERT INTO {s}.audit_changes
            (transaction_id, table_schema, table_name, table_pk, op, {column})
        SELECT (SELECT {s}.threadline_transaction_id()), TG_TABLE_SCHEMA, TG_TABLE_NAME,
            {pk}, '{op}', {image}
        FROM (SELECT to_jsonb(r) AS j FROM {transition} AS r) AS c
        WHERE c.j ?& {required} OR {check};
",
                pk = pk("c.j"),
                image = redact("c.j"),
                check = check("c.j"),
            )
        };
        let body = format!(
            "DECLARE
    v_new jsonb;
    v_old jsonb;
    v_new_cmp jsonb;
    v_old_cmp jsonb;
    v_fields text[];
BEGIN
    IF TG_OP = 'UPDATE' THEN
        v_new := to_jsonb(NEW);
        IF NOT (v_new ?& {required}) THEN
            PERFORM {check_new};
        END IF;
        v_old := to_jsonb(OLD);
        v_new_cmp := {new_cmp};
        v_old_cmp := {old_cmp};
        IF v_new_cmp = v_old_cmp THEN
            RETURN NULL;
        END IF;
        v_fields := ARRAY(SELECT e.k FROM jsonb_each(v_new_cmp) AS e(k, v)
            WHERE e.v IS DISTINCT FROM v_old_cmp -> e.k ORDER BY e.k);
        INSERT INTO {s}.audit_changes
            (transaction_id, table_schema, table_name, table_pk, op, data_after, changed_fields, changed_from)
        VALUES ({s}.threadline_transaction_id(), TG_TABLE_SCHEMA, TG_TABLE_NAME,
            {pk_new}, 'update', {image_new}, v_fields, {changed_from});
    ELSIF TG_OP = 'INSERT' THEN
{insert}    ELSIF TG_OP = 'DELETE' THEN
{delete}    END IF;
    RETURN NULL;
END
",
            check_new = check("v_new"),
            new_cmp = compared("v_new"),
            old_cmp = compared("v_old"),
            pk_new = pk("v_new"),
            image_new = redact("v_new"),
            insert = bulk("insert", "threadline_new", "data_after"),
            delete = bulk("delete", "threadline_old", "data_before"),
        );
        let tag = dollar_tag(&body);
        format!(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger\nLANGUAGE plpgsql AS {tag}\n{body}{tag};\n",
            self.function_name()
        )
    }
}

/// The capture function's unquoted name for a table: `threadline_capture_<table>_<hash>`,
/// at most 63 bytes, unique per schema-qualified table even when long names share a prefix.
pub fn capture_function_name(table: &TableName) -> String {
    const PREFIX: &str = "threadline_capture_";
    let hash = fnv1a(format!("{}\0{}", table.schema().as_str(), table.name().as_str()).as_bytes());
    let suffix = format!("_{:08x}", hash as u32 ^ (hash >> 32) as u32);
    let budget = crate::ident::MAX_IDENT_BYTES - PREFIX.len() - suffix.len();
    let mut short = String::new();
    for c in table.name().as_str().chars() {
        if short.len() + c.len_utf8() > budget {
            break;
        }
        short.push(c);
    }
    format!("{PREFIX}{short}{suffix}")
}

/// `ARRAY['a', 'b']::text[]`.
fn text_array<'a>(items: impl Iterator<Item = &'a Ident>) -> String {
    let items: Vec<String> = items.map(|i| quote_literal(i.as_str())).collect();
    format!("ARRAY[{}]::text[]", items.join(", "))
}
