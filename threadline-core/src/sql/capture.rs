//! Per-table capture SQL (SPEC §3): one PL/pgSQL function per table and its triggers.
//!
//! * INSERT, UPDATE and DELETE use statement-level triggers with transition tables, so a
//!   statement writes all its audit rows with one `INSERT ... SELECT`. UPDATE pairs old and new
//!   rows by joining the transition tables on the primary key.
//! * A row-level trigger fires only for rows whose primary key changed (`WHEN` on the key
//!   columns): it captures those rows itself, with PostgreSQL's own old/new pairing, and tells
//!   the statement-level trigger to skip them. Tables audited with explicit `key_columns`
//!   (which need not be unique) capture every UPDATE with that row-level trigger.
//! * Every image is built once per row from `to_jsonb(row)`, so added columns are captured and
//!   dropped columns never break a write. Change detection compares the images column by
//!   column with expressions baked at generation time, and falls back to a `jsonb_each` diff
//!   when the row has columns the generator did not know (added since).
//! * Redaction works on the image and is guarded: when a key or redacted column disappears (a
//!   rename), the shared `threadline_check_shape` function refuses the write instead of
//!   capturing a value unredacted.
//! * `TRUNCATE` fires a `BEFORE TRUNCATE` statement trigger (the rows are still there): it
//!   records one `op = 'truncate'` change with an empty key and `{"rows": N}` in `data_before`,
//!   and with `truncate = "images"` every row's redacted image as a `delete` first, refusing
//!   the `TRUNCATE` when the table holds more rows than the policy's limit.
//! * The transaction row id is read from the transaction-local cache inline; the shared
//!   `threadline_transaction_id()` runs only on a miss, and only when a row is captured.
//!
//! `guides/performance.md` has the measurements behind each choice.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::ident::{Ident, TableName, quote_literal};
use crate::redaction::{PolicyError, ResolvedPolicy, TableCapture, TruncateCapture};
use crate::sql::install::{AUDIT_TABLES, InstallOptions};
use crate::sql::{CACHED_ACTOR_KEY, actor_key_sql};
use crate::sql::{dollar_tag, fnv1a};

/// Names of the triggers every audited table gets (insert, update, delete, the row-level
/// update trigger for rows whose key changes, or for every row with explicit key columns, and
/// the `BEFORE TRUNCATE` trigger).
pub const TRIGGER_NAMES: [&str; 5] = [
    "threadline_capture_insert",
    "threadline_capture_update",
    "threadline_capture_delete",
    "threadline_capture_update_row",
    "threadline_capture_truncate",
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
    #[error("invalid capture policy for {table}")]
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
        if table.schema() == &install.schema
            && (AUDIT_TABLES.contains(&table.name().as_str())
                || super::SEAL_TABLES.contains(&table.name().as_str()))
        {
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
                .expect("capture function names are length-limited identifiers")
        )
    }

    /// The stamp stored as the function's comment: changes whenever the generated function would.
    pub fn stamp(&self) -> String {
        format!(
            "{STAMP_PREFIX}{:016x}",
            // Hardening is not part of the stamp, so coverage checks agree whether or not the
            // checker was told about the owner role (doctor checks hardening on its own).
            fnv1a(self.function_sql(false).as_bytes())
        )
    }

    /// The comment written on the capture function: the [`stamp`](Self::stamp), then the
    /// policy it was generated with as one line of JSON (see [`CaptureComment`]), so that
    /// tools read the policy from the database instead of guessing it.
    ///
    /// [`CaptureComment`]: crate::CaptureComment
    pub fn comment(&self) -> String {
        crate::capture_policy::capture_comment(&self.stamp(), &self.policy)
    }

    /// The complete capture SQL: an apply-time guard, the function, its comment (stamp and
    /// stored policy), and the triggers.
    pub fn sql(&self) -> String {
        let t = &self.table;
        let f = self.function_name();
        let mut out = format!(
            "-- Threadline capture for {} (generated by threadline-core; regenerate with `threadline gen-triggers`).\n\n",
            t.display_name()
        );
        out.push_str(&self.guard_sql());
        out.push_str(&self.function_sql(self.owner_role.is_some()));
        let _ = writeln!(
            out,
            "COMMENT ON FUNCTION {f}() IS {};\n",
            quote_literal(&self.comment())
        );
        out.push_str(&super::harden::capture_hardening(
            self.owner_role.as_ref(),
            &f,
            t,
        ));
        for name in TRIGGER_NAMES {
            let _ = writeln!(out, "DROP TRIGGER IF EXISTS {name} ON {t};");
        }
        let [insert, update, delete, update_row, truncate] = TRIGGER_NAMES;
        let _ = writeln!(
            out,
            "CREATE TRIGGER {insert} AFTER INSERT ON {t}\n    REFERENCING NEW TABLE AS threadline_new\n    FOR EACH STATEMENT EXECUTE FUNCTION {f}();"
        );
        let _ = writeln!(
            out,
            "CREATE TRIGGER {delete} AFTER DELETE ON {t}\n    REFERENCING OLD TABLE AS threadline_old\n    FOR EACH STATEMENT EXECUTE FUNCTION {f}();"
        );
        // BEFORE: the rows are still there to be counted (and imaged).
        let _ = writeln!(
            out,
            "CREATE TRIGGER {truncate} BEFORE TRUNCATE ON {t}\n    FOR EACH STATEMENT EXECUTE FUNCTION {f}();"
        );
        if self.key_is_explicit {
            // Explicit key columns need not be unique, so rows cannot be paired by key.
            let _ = writeln!(
                out,
                "CREATE TRIGGER {update} AFTER UPDATE ON {t}\n    FOR EACH STATEMENT EXECUTE FUNCTION {f}();\n\
                 CREATE TRIGGER {update_row} AFTER UPDATE ON {t}\n    FOR EACH ROW EXECUTE FUNCTION {f}();"
            );
        } else {
            let cols = |rec: &str| {
                self.key
                    .iter()
                    .map(|k| format!("{rec}.{}", k.quoted()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "CREATE TRIGGER {update} AFTER UPDATE ON {t}\n    REFERENCING OLD TABLE AS threadline_old NEW TABLE AS threadline_new\n    FOR EACH STATEMENT EXECUTE FUNCTION {f}();\n\
                 CREATE TRIGGER {update_row} AFTER UPDATE ON {t}\n    FOR EACH ROW WHEN (ROW({}) IS DISTINCT FROM ROW({}))\n    EXECUTE FUNCTION {f}();",
                cols("OLD"),
                cols("NEW")
            );
        }
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

    /// The `CREATE OR REPLACE FUNCTION` statement; `hardened` checks the cached transaction id
    /// before using it.
    fn function_sql(&self, hardened: bool) -> String {
        let s = &self.schema;
        let p = &self.policy;
        let required: BTreeSet<&Ident> = self.key.iter().chain(&p.exclude).chain(&p.mask).collect();
        let required = text_array(required.into_iter());
        // Passes rows whose image has every key and redacted column; calls the slow path
        // (which raises, or allows a dropped redacted column) for the others.
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
        let shape_ok = |image: &str| format!("({image} ?& {required} OR {})", check(image));
        let placeholder = self.placeholder_expr();
        let redact = |image: &str| self.redact_expr(image);
        let pk = |image: &str| self.key_expr(image);
        let changed = |new: &str, old: &str| self.changed_fields_expr(new, old);
        let changed_from = |old: &str, fields: &str| {
            if !p.store_changed_from {
                return "NULL".to_owned();
            }
            let value = if p.mask.is_empty() {
                format!("{old} -> k")
            } else {
                format!(
                    "CASE WHEN k = ANY ({}) THEN {placeholder} ELSE {old} -> k END",
                    text_array(p.mask.iter())
                )
            };
            format!("(SELECT jsonb_object_agg(k, {value}) FROM unnest({fields}) AS k)")
        };
        // Hardened capture does not take the cached transaction id on trust: the application
        // can write `threadline.txn`, so the id must name a row of this very transaction. The
        // check is a subquery of the capture INSERT itself (one primary-key probe), which costs
        // far less than a statement of its own. Without hardening the application can write
        // the audit tables anyway, and the cache is used as it is.
        let cached = if hardened {
            format!(
                "(SELECT t.id FROM {s}.audit_transactions AS t WHERE t.id = v_tx AND t.txid = txid_current())"
            )
        } else {
            "v_tx".to_owned()
        };
        // Without hardening, `audit_changes.actor_key` comes from its column default (the key
        // cached with the transaction id). Hardened capture reads it from the verified
        // transaction row instead, so that a forged cache cannot hide an actor's changes from
        // the timeline by actor; an actor-less row falls back to the cache, where a forged key
        // is harmless (queries recheck the actor on the transaction row).
        let (tx_columns, key) = if hardened {
            (
                "transaction_id, actor_key",
                format!(
                    ", coalesce((SELECT {key} FROM {s}.audit_transactions AS t \
                     WHERE t.id = v_tx AND t.txid = txid_current()), {CACHED_ACTOR_KEY})",
                    key = actor_key_sql("t.actor_ref"),
                ),
            )
        } else {
            ("transaction_id", String::new())
        };
        let tx = format!("coalesce({cached}, (SELECT {s}.threadline_transaction_id())){key}");
        let bulk = |op: &str, transition: &str, column: &str| {
            format!(
                "        INSERT INTO {s}.audit_changes
            ({tx_columns}, table_schema, table_name, table_pk, op, {column})
        SELECT {tx}, TG_TABLE_SCHEMA, TG_TABLE_NAME, {pk}, '{op}', {image}
        FROM (SELECT to_jsonb(r.*) AS j FROM {transition} AS r OFFSET 0) AS c
        WHERE {shape};
",
                pk = pk("c.j"),
                image = redact("c.j"),
                shape = shape_ok("c.j"),
            )
        };
        // `OFFSET 0` keeps each subquery from being flattened into its parent, which would
        // evaluate `to_jsonb` (and the diff) once per reference instead of once per row.
        let bulk_update = |skip_moved: bool| {
            let join: Vec<String> = self
                .key
                .iter()
                .map(|k| format!("o.{k} = n.{k}", k = k.quoted()))
                .collect();
            format!(
                "            INSERT INTO {s}.audit_changes
                ({tx_columns}, table_schema, table_name, table_pk, op, data_after, changed_fields, changed_from)
            SELECT {tx}, TG_TABLE_SCHEMA, TG_TABLE_NAME, {pk}, 'update', {image}, d.f, {from}
            FROM (SELECT c.n, c.o, {diff} AS f
                FROM (SELECT to_jsonb(n.*) AS n, to_jsonb(o.*) AS o
                    FROM threadline_new AS n JOIN threadline_old AS o ON {join} OFFSET 0) AS c
                WHERE {shape}{moved} OFFSET 0) AS d
            WHERE cardinality(d.f) > 0;
",
                pk = pk("d.n"),
                image = redact("d.n"),
                from = changed_from("d.o", "d.f"),
                diff = changed("c.n", "c.o"),
                join = join.join(" AND "),
                shape = shape_ok("c.n"),
                moved = if skip_moved {
                    format!(" AND NOT v_moved @> jsonb_build_array({})", pk("c.n"))
                } else {
                    String::new()
                },
            )
        };
        // Rows whose key changed are captured by the row-level trigger, which lists their new
        // keys in a transaction-local setting named after the table and trigger depth.
        let moved_setting = "format('threadline.moved_%s_%s', TG_RELID, pg_trigger_depth())";
        let (record_moved, update) = if self.key_is_explicit {
            (String::new(), String::new())
        } else {
            (
                format!(
                    "        v_name := {moved_setting};
        v_keys := set_config(v_name, concat_ws(',', NULLIF(current_setting(v_name, true), ''), {pk_new}::text), true);
",
                    pk_new = pk("v_new")
                ),
                format!(
                    "    ELSIF TG_OP = 'UPDATE' THEN
        v_name := {moved_setting};
        v_keys := current_setting(v_name, true);
        IF coalesce(v_keys, '') = '' THEN
{plain}        ELSE
            v_moved := ('[' || v_keys || ']')::jsonb;
            v_keys := set_config(v_name, '', true);
{skipping}        END IF;
",
                    plain = bulk_update(false),
                    skipping = bulk_update(true),
                ),
            )
        };
        let truncate = self.truncate_sql(tx_columns, &tx, &shape_ok("c.j"));
        let body = format!(
            "#variable_conflict use_variable
DECLARE
    v_cache text := current_setting('threadline.txn', true);
    v_tx bigint;
    v_new jsonb;
    v_old jsonb;
    v_fields text[];
    v_name text;
    v_keys text;
    v_moved jsonb;
    v_rows bigint;
BEGIN
    IF split_part(v_cache, ':', 1) = txid_current()::text THEN
        v_tx := split_part(v_cache, ':', 2)::bigint;
    END IF;
    IF TG_LEVEL = 'ROW' THEN
        v_new := to_jsonb(NEW);
        IF NOT (v_new ?& {required}) THEN
            PERFORM {check_new};
        END IF;
{record_moved}        v_old := to_jsonb(OLD);
        v_fields := {diff};
        IF cardinality(v_fields) > 0 THEN
            INSERT INTO {s}.audit_changes
                ({tx_columns}, table_schema, table_name, table_pk, op, data_after, changed_fields, changed_from)
            VALUES (coalesce({cached}, {s}.threadline_transaction_id()){key}, TG_TABLE_SCHEMA, TG_TABLE_NAME,
                {pk_new}, 'update', {image_new}, v_fields, {from});
        END IF;
    ELSIF TG_OP = 'INSERT' THEN
{insert}    ELSIF TG_OP = 'DELETE' THEN
{delete}    ELSIF TG_OP = 'TRUNCATE' THEN
{truncate}{update}    END IF;
    RETURN NULL;
END
",
            check_new = check("v_new"),
            diff = changed("v_new", "v_old"),
            pk_new = pk("v_new"),
            image_new = redact("v_new"),
            from = changed_from("v_old", "v_fields"),
            insert = bulk("insert", "threadline_new", "data_after"),
            delete = bulk("delete", "threadline_old", "data_before"),
        );
        let tag = dollar_tag(&body);
        format!(
            "CREATE OR REPLACE FUNCTION {}() RETURNS trigger\nLANGUAGE plpgsql AS {tag}\n{body}{tag};\n",
            self.function_name()
        )
    }

    /// The `TRUNCATE` branch of the capture function: counts the rows (`ONLY`: a truncated
    /// inheritance child fires its own trigger), with `images` refuses a table over the limit
    /// and captures every row as a `delete`, then records the `truncate` change.
    fn truncate_sql(&self, tx_columns: &str, tx: &str, shape: &str) -> String {
        let s = &self.schema;
        let t = &self.table;
        let p = &self.policy;
        let mut out = String::new();
        match p.truncate {
            TruncateCapture::Count => {
                let _ = writeln!(out, "        SELECT count(*) INTO v_rows FROM ONLY {t};");
            }
            TruncateCapture::Images => {
                let limit = p.truncate_row_limit;
                // Counting stops one past the limit, so a huge table is refused without a full scan.
                let _ = write!(
                    out,
                    "        SELECT count(*) INTO v_rows FROM (SELECT 1 FROM ONLY {t} LIMIT {over}) AS r;
        IF v_rows > {limit} THEN
            RAISE EXCEPTION 'threadline: TRUNCATE of % refused: it holds more than % rows, and its capture policy (truncate = \"images\") stores every removed row', {name}, {limit}
                USING HINT = 'delete the rows in batches instead, or raise truncate_row_limit (or set truncate = \"count\") in threadline.toml and regenerate the capture',
                      ERRCODE = 'program_limit_exceeded';
        END IF;
        INSERT INTO {s}.audit_changes
            ({tx_columns}, table_schema, table_name, table_pk, op, data_before)
        SELECT {tx}, TG_TABLE_SCHEMA, TG_TABLE_NAME, {pk}, 'delete', {image}
        FROM (SELECT to_jsonb(r.*) AS j FROM ONLY {t} AS r OFFSET 0) AS c
        WHERE {shape};
",
                    over = limit.saturating_add(1),
                    name = quote_literal(&t.display_name()),
                    pk = self.key_expr("c.j"),
                    image = self.redact_expr("c.j"),
                );
            }
        }
        let _ = writeln!(
            out,
            "        INSERT INTO {s}.audit_changes
            ({tx_columns}, table_schema, table_name, table_pk, op, data_before)
        VALUES ({tx}, TG_TABLE_SCHEMA, TG_TABLE_NAME, '{{}}'::jsonb, 'truncate', jsonb_build_object('rows', v_rows));"
        );
        out
    }

    /// The audit schema.
    pub(crate) fn schema(&self) -> &Ident {
        &self.schema
    }

    /// The mask placeholder as a `jsonb` expression.
    fn placeholder_expr(&self) -> String {
        format!(
            "to_jsonb({}::text)",
            quote_literal(&self.policy.placeholder)
        )
    }

    /// The redacted image of the `jsonb` row image `image`: excluded columns removed, masked
    /// ones replaced by the placeholder (the expression every captured image goes through).
    pub(crate) fn redact_expr(&self, image: &str) -> String {
        let p = &self.policy;
        let mut expr = if p.exclude.is_empty() {
            image.to_owned()
        } else {
            format!("({image} - {})", text_array(p.exclude.iter()))
        };
        let placeholder = self.placeholder_expr();
        for m in &p.mask {
            expr = format!(
                "jsonb_set({expr}, {}, {placeholder}, false)",
                text_array(std::iter::once(m))
            );
        }
        expr
    }

    /// The `table_pk` object of the `jsonb` row image `image`.
    pub(crate) fn key_expr(&self, image: &str) -> String {
        let pairs: Vec<String> = self
            .key
            .iter()
            .map(|k| {
                let k = quote_literal(k.as_str());
                format!("{k}, {image} -> {k}")
            })
            .collect();
        format!("jsonb_build_object({})", pairs.join(", "))
    }

    /// A `text[]` expression: the sorted names of the compared columns whose values differ
    /// between two row images (excluded and except columns are never compared).
    ///
    /// Known columns are compared by expressions baked here; a row with columns the generator
    /// did not know (added since) takes the install's `threadline_changed_fields`, a `jsonb_each`
    /// diff of every column.
    fn changed_fields_expr(&self, new: &str, old: &str) -> String {
        let p = &self.policy;
        let ignored: Vec<&Ident> = p.exclude.iter().chain(&p.except).collect();
        let generic = format!(
            "{}.threadline_changed_fields({new}, {old}, {})",
            self.schema(),
            text_array(ignored.iter().copied())
        );
        let Some(columns) = &self.columns else {
            return generic;
        };
        let mut compared: Vec<&str> = columns
            .iter()
            .filter(|c| !ignored.contains(c))
            .map(Ident::as_str)
            .collect();
        compared.sort_unstable();
        let cases: Vec<String> = compared
            .iter()
            .map(|c| {
                let c = quote_literal(c);
                format!("CASE WHEN {new} -> {c} IS DISTINCT FROM {old} -> {c} THEN {c} END")
            })
            .collect();
        format!(
            "CASE WHEN ({new} - {known}) = '{{}}'::jsonb
                THEN array_remove(ARRAY[{cases}]::text[], NULL)
                ELSE {generic} END",
            known = text_array(columns.iter()),
            cases = cases.join(",\n                    "),
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
