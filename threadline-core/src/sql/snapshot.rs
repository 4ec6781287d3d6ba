//! Baseline snapshots (SPEC §7 continuity): recording a table's existing rows as
//! `op = 'snapshot'` changes, redacted exactly like captured images.

use crate::ident::quote_literal;
use crate::sql::CapturePlan;

impl CapturePlan {
    /// One batch of a baseline snapshot: a single statement that records up to `$2` rows of
    /// the table, in key order after the key `$1` (a `table_pk` object; NULL for the first
    /// batch), as `snapshot` changes. It returns one row: rows scanned, changes recorded, and
    /// the key of the last row scanned (NULL when none: the snapshot is complete).
    ///
    /// * Images go through the same redaction expression as captured images.
    /// * Rows are locked `FOR SHARE` until the batch commits, so a concurrent update waits
    ///   and is captured after the snapshot row, never before it.
    /// * A row is skipped when the trail's latest change for it already holds exactly this
    ///   image (an earlier snapshot or a captured insert or update), so reruns and resumed
    ///   runs record nothing twice, and rows changed while capture was off are recorded again.
    ///
    /// ```
    /// use threadline_core::{CapturePlan, Ident, InstallOptions, TableCapture};
    /// let plan = CapturePlan::new(&InstallOptions::default(), "users".parse()?,
    ///     Some(vec![Ident::new("id")?]), None, &TableCapture::default().mask(["email"]))?;
    /// let sql = plan.snapshot_batch_sql();
    /// assert!(sql.contains("'snapshot'") && sql.contains("[REDACTED]") && sql.contains("FOR SHARE"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot_batch_sql(&self) -> String {
        let s = self.schema();
        let t = self.table();
        let keys: Vec<String> = self.key().iter().map(|k| k.quoted()).collect();
        let cols = |alias: &str| {
            let list: Vec<String> = keys.iter().map(|k| format!("{alias}.{k}")).collect();
            format!("({})", list.join(", "))
        };
        let carried: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("r.{k} AS threadline_k{i}"))
            .collect();
        let last_order: Vec<String> = (0..keys.len())
            .map(|i| format!("b.threadline_k{i} DESC"))
            .collect();
        let schema_lit = quote_literal(t.schema().as_str());
        let name_lit = quote_literal(t.name().as_str());
        format!(
            "WITH batch AS (
    SELECT to_jsonb(r.*) AS j, {carried}
    FROM {t} AS r
    WHERE $1::jsonb IS NULL
       OR {r_cols} > (SELECT {b_cols_bare} FROM jsonb_populate_record(NULL::{t}, $1::jsonb) AS b)
    ORDER BY {r_order}
    LIMIT $2
    FOR SHARE OF r
), images AS (
    SELECT {pk} AS pk, {image} AS image FROM batch AS b
), recorded AS (
    INSERT INTO {s}.audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after)
    SELECT (SELECT {s}.threadline_transaction_id()), {schema_lit}, {name_lit}, i.pk, 'snapshot', i.image
    FROM images AS i
    WHERE NOT EXISTS (
        SELECT 1 FROM (
            SELECT c.op, c.data_after FROM {s}.audit_changes AS c
            WHERE c.table_name = {name_lit} AND c.table_pk = i.pk AND c.table_schema = {schema_lit}
            ORDER BY c.captured_at DESC, c.id DESC
            LIMIT 1
        ) AS latest
        WHERE latest.op <> 'delete' AND latest.data_after = i.image
    )
    RETURNING 1
)
SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM recorded),
    (SELECT {pk} FROM batch AS b ORDER BY {last_order} LIMIT 1)",
            carried = carried.join(", "),
            r_cols = cols("r"),
            b_cols_bare = keys.iter().map(|k| format!("b.{k}")).collect::<Vec<_>>().join(", "),
            r_order = keys.iter().map(|k| format!("r.{k}")).collect::<Vec<_>>().join(", "),
            pk = self.key_expr("b.j"),
            image = self.redact_expr("b.j"),
            last_order = last_order.join(", "),
        )
    }
}
