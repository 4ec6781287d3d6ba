//! Converting a plain trail to the partitioned layout without rewriting it: each old table
//! becomes one partition of its time range under a new partitioned parent made by the
//! partitioned install. The plan and its SQL; `threadline_sqlx::convert_to_partitioned` runs
//! them.
//!
//! Steps, per audit table (`audit_transactions`, then `audit_changes`):
//!
//! 1. *Prepare* (writes go on): build the partition's primary key index `(id, key)` with
//!    `CREATE UNIQUE INDEX CONCURRENTLY`, add a `CHECK` of the range `NOT VALID` (a brief
//!    `ACCESS EXCLUSIVE` lock, no scan) and `VALIDATE` it (a scan under `SHARE UPDATE
//!    EXCLUSIVE`, which lets capture go on), so that `ATTACH PARTITION` can skip its scan.
//! 2. *Switch* (one transaction holding `ACCESS EXCLUSIVE` on both tables, so capture
//!    waits): drop the foreign key of `audit_actions.transaction_id`, swap each table's
//!    primary key for the prepared index, drop its identity (the parent's takes over after the
//!    highest id), rename the table and its indexes to the partition's names, run the
//!    partitioned install (parents, `DEFAULT` partitions, indexes, functions, hardening), then
//!    attach each old table. Every index the parent needs already exists on it, so nothing is
//!    rebuilt: the lock lasts as long as the catalog changes, whatever the table's size.

use chrono::{DateTime, TimeDelta, Utc};

use super::{PartitionInterval, PartitionRange, PartitionedTable};
use crate::ident::{Ident, quote_ident, quote_literal};
use crate::sql::{InstallOptions, install_sql};

/// The name of the `CHECK` constraint that proves an old table's range before the attach.
pub const RANGE_CHECK: &str = "threadline_range";

/// The range an old table becomes, given its oldest and newest key and the current time:
/// from the start of the interval of the oldest row (or of now) to the end of the interval
/// that holds both the newest row and an hour from now, so that capture running during the
/// switch still lands inside it.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use threadline_core::partition::{PartitionInterval, PartitionedTable, convert_range};
/// let now = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
/// let oldest = Utc.with_ymd_and_hms(2026, 7, 14, 0, 0, 0).unwrap();
/// let r = convert_range(PartitionedTable::Changes, PartitionInterval::Month, now, Some(oldest), Some(now));
/// assert_eq!(r.name(), "audit_changes_p20260701");
/// assert_eq!(r.to, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
/// ```
pub fn convert_range(
    table: PartitionedTable,
    interval: PartitionInterval,
    now: DateTime<Utc>,
    oldest: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
) -> PartitionRange {
    let soon = now + TimeDelta::hours(1);
    let last = newest.map_or(soon, |n| n.max(soon));
    PartitionRange {
        table,
        from: interval.floor(oldest.map_or(now, |o| o.min(now))),
        to: interval.next(interval.floor(last)),
    }
}

/// One old table as the switch needs it (read from the catalog under the lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedTable {
    /// Its range as a partition (see [`convert_range`]).
    pub range: PartitionRange,
    /// The name of its current primary key constraint.
    pub primary_key: String,
    /// Its other indexes, to be renamed to the partition's names.
    pub indexes: Vec<String>,
    /// The parent's identity restarts here: above every id the old table holds or its
    /// sequence handed out.
    pub next_id: i64,
    /// The old table's owner: the parent gets it, so the trail stays owned by whoever owned
    /// it, whoever runs the conversion.
    pub owner: Ident,
}

/// The name of the prepared primary key index of a partition.
pub fn convert_pkey_name(range: &PartitionRange) -> String {
    format!("{}_pkey", range.name())
}

/// The new name of an old table's index: the table's name prefix replaced by the
/// partition's (`audit_changes_row_idx` → `audit_changes_p20260701_row_idx`), or the
/// partition's name with a suffix when the result would not fit in 63 bytes.
pub fn convert_index_name(range: &PartitionRange, index: &str) -> String {
    let rest = index
        .strip_prefix(range.table.name())
        .unwrap_or(index)
        .trim_start_matches('_');
    let name = format!("{}_{rest}", range.name());
    if name.len() <= 63 {
        name
    } else {
        format!("{}_idx{}", range.name(), rest.len())
    }
}

/// Step 1 for one table, as separate statements (the first cannot run in a transaction):
/// the concurrent primary key index, the `NOT VALID` range check, its validation.
pub fn convert_prepare_sql(schema: &Ident, range: &PartitionRange) -> [String; 4] {
    let (from, to) = range.bounds();
    let table = range.table.name();
    let key = range.table.key();
    let pkey = quote_ident(&convert_pkey_name(range));
    [
        format!(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {pkey} ON {schema}.{table} (id, {key})"
        ),
        format!("ALTER TABLE {schema}.{table} DROP CONSTRAINT IF EXISTS {RANGE_CHECK}"),
        format!(
            "ALTER TABLE {schema}.{table} ADD CONSTRAINT {RANGE_CHECK} CHECK ({key} >= {from} AND {key} < {to}) NOT VALID"
        ),
        format!("ALTER TABLE {schema}.{table} VALIDATE CONSTRAINT {RANGE_CHECK}"),
    ]
}

/// Step 2: the statements of the switch transaction, after the caller locked both tables
/// and read `tables` (transactions first) and the foreign keys on `audit_actions` that
/// reference `audit_transactions` (`action_fkeys`). The parents are partitioned by
/// `interval`.
pub fn convert_switch_sql(
    install: &InstallOptions,
    interval: PartitionInterval,
    tables: &[ConvertedTable],
    action_fkeys: &[String],
) -> String {
    let schema = &install.schema;
    let mut sql = String::new();
    for fk in action_fkeys {
        sql.push_str(&format!(
            "ALTER TABLE {schema}.audit_actions DROP CONSTRAINT {};\n",
            quote_ident(fk)
        ));
    }
    for t in tables {
        let table = t.range.table.name();
        let part = quote_ident(&t.range.name());
        let pkey = quote_ident(&convert_pkey_name(&t.range));
        sql.push_str(&format!(
            "ALTER TABLE {schema}.{table} DROP CONSTRAINT {old_pkey};
ALTER TABLE {schema}.{table} ADD CONSTRAINT {pkey} PRIMARY KEY USING INDEX {pkey};
ALTER TABLE {schema}.{table} ALTER COLUMN id DROP IDENTITY;
ALTER TABLE {schema}.{table} RENAME TO {part};
",
            old_pkey = quote_ident(&t.primary_key),
        ));
        for index in &t.indexes {
            sql.push_str(&format!(
                "ALTER INDEX {schema}.{} RENAME TO {};\n",
                quote_ident(index),
                quote_ident(&convert_index_name(&t.range, index))
            ));
        }
    }
    let partitioned = install.clone().with_partitioning(interval);
    sql.push_str(&install_sql(&partitioned));
    for t in tables {
        let (from, to) = t.range.bounds();
        let table = t.range.table.name();
        let part = quote_ident(&t.range.name());
        sql.push_str(&format!(
            "ALTER TABLE {schema}.{table} ALTER COLUMN id RESTART WITH {next};
ALTER TABLE {schema}.{table} ATTACH PARTITION {schema}.{part} FOR VALUES FROM ({from}) TO ({to});
ALTER TABLE {schema}.{part} DROP CONSTRAINT {RANGE_CHECK};
ALTER TABLE {schema}.{table} OWNER TO {owner};
ALTER TABLE {schema}.{default} OWNER TO {owner};
",
            next = t.next_id,
            owner = t.owner,
            default = quote_ident(&t.range.table.default_partition()),
        ));
        sql.push_str(&copy_grants(schema, &t.range));
    }
    sql
}

/// A `DO` block that grants on the parent what was granted on the old table (now the
/// partition `range`), so readers keep reading whatever options the conversion ran with.
fn copy_grants(schema: &Ident, range: &PartitionRange) -> String {
    let old = quote_literal(&format!("{schema}.{}", quote_ident(&range.name())));
    let parent = quote_literal(&format!("{schema}.{}", range.table.name()));
    let body = format!(
        "DECLARE
    r record;
BEGIN
    FOR r IN SELECT a.privilege_type, a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
             WHERE c.oid = {old}::regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE pg_catalog.format('GRANT %s ON %s TO %s', r.privilege_type, {parent},
            CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) END);
    END LOOP;
END
"
    );
    let tag = crate::sql::dollar_tag(&body);
    format!("DO {tag}\n{body}{tag};\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn the_range_covers_every_row_and_the_next_hour() {
        let t = PartitionedTable::Transactions;
        let now = at(2026, 12, 31, 23);
        let r = convert_range(
            t,
            PartitionInterval::Month,
            now,
            Some(at(2026, 3, 5, 0)),
            None,
        );
        assert_eq!((r.from, r.to), (at(2026, 3, 1, 0), at(2027, 2, 1, 0)));
        // An empty table: the current interval (and the next hour's).
        let r = convert_range(t, PartitionInterval::Day, at(2026, 12, 3, 9), None, None);
        assert_eq!((r.from, r.to), (at(2026, 12, 3, 0), at(2026, 12, 4, 0)));
        // A row stamped in the future stays inside.
        let r = convert_range(
            t,
            PartitionInterval::Week,
            at(2026, 12, 3, 9),
            Some(at(2026, 12, 2, 0)),
            Some(at(2026, 12, 20, 0)),
        );
        assert_eq!((r.from, r.to), (at(2026, 11, 30, 0), at(2026, 12, 21, 0)));
    }

    #[test]
    fn index_names_take_the_partition_prefix_and_fit() {
        let r = PartitionRange::containing(
            PartitionedTable::Changes,
            PartitionInterval::Month,
            at(2026, 7, 2, 0),
        );
        assert_eq!(
            convert_index_name(&r, "audit_changes_row_idx"),
            "audit_changes_p20260701_row_idx"
        );
        assert_eq!(
            convert_index_name(&r, "mine"),
            "audit_changes_p20260701_mine"
        );
        let long = format!("audit_changes_{}", "x".repeat(45));
        assert!(convert_index_name(&r, &long).len() <= 63);
    }
}
