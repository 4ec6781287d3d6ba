//! The partitioned layout (SPEC §10): intervals, partition ranges and names, the plan of
//! `partitions ensure` and of retention by partition, and the SQL they run. Pure: the I/O is
//! in `threadline_sqlx::partition`.
//!
//! `audit_changes` is range-partitioned on `captured_at` and `audit_transactions` on
//! `occurred_at`, both in UTC-aligned ranges of one [`PartitionInterval`]. Each also has a
//! `DEFAULT` partition, so a write never fails because maintenance lagged.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use threadline_core::partition::{PartitionInterval, PartitionedTable, PartitionRange};
//! let at = Utc.with_ymd_and_hms(2026, 12, 3, 9, 30, 0).unwrap();
//! let range = PartitionRange::containing(PartitionedTable::Changes, PartitionInterval::Month, at);
//! assert_eq!(range.name(), "audit_changes_p20261201");
//! assert_eq!(range.to, Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap());
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};

use crate::ident::{Ident, quote_literal};

mod convert;
pub use convert::{
    ConvertedTable, RANGE_CHECK, convert_index_name, convert_pkey_name, convert_prepare_sql,
    convert_range, convert_switch_sql,
};

/// Default number of future partitions `partitions ensure` keeps ahead of now.
pub const DEFAULT_PREMAKE: u32 = 3;

/// Largest accepted `premake`.
pub const MAX_PREMAKE: u32 = 366;

/// The comment `install` puts on each partitioned audit table; the interval follows it.
pub const LAYOUT_COMMENT_PREFIX: &str = "threadline: partitioned by ";

/// The width of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum PartitionInterval {
    /// One UTC day.
    Day,
    /// One ISO week, Monday 00:00 UTC to the next Monday.
    Week,
    /// One calendar month in UTC (the default).
    #[default]
    Month,
}

/// An interval that is not `day`, `week` or `month`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown partition interval {0:?}; use day, week or month (e.g. `interval = \"month\"` under [storage], or --interval month)"
)]
pub struct IntervalError(pub String);

impl PartitionInterval {
    /// All intervals.
    pub const ALL: [Self; 3] = [Self::Day, Self::Week, Self::Month];

    /// `day`, `week` or `month`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The start of the interval that contains `at`.
    pub fn floor(self, at: DateTime<Utc>) -> DateTime<Utc> {
        let date = at.date_naive();
        let start = match self {
            Self::Day => date,
            Self::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
            Self::Month => date.with_day(1).unwrap_or(date),
        };
        midnight(start)
    }

    /// The start of the interval after the one that starts at `start` (a value of
    /// [`floor`](Self::floor)).
    pub fn next(self, start: DateTime<Utc>) -> DateTime<Utc> {
        let date = start.date_naive();
        let next = match self {
            Self::Day => date + Days::new(1),
            Self::Week => date + Days::new(7),
            Self::Month => date + Months::new(1),
        };
        midnight(next)
    }
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

impl fmt::Display for PartitionInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PartitionInterval {
    type Err = IntervalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| IntervalError(s.to_owned()))
    }
}

/// One of the two partitioned audit tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartitionedTable {
    /// `audit_transactions`, partitioned on `occurred_at`.
    Transactions,
    /// `audit_changes`, partitioned on `captured_at`.
    Changes,
}

impl PartitionedTable {
    /// Both tables.
    pub const ALL: [Self; 2] = [Self::Transactions, Self::Changes];

    /// The table's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Transactions => "audit_transactions",
            Self::Changes => "audit_changes",
        }
    }

    /// The partition key column.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Transactions => "occurred_at",
            Self::Changes => "captured_at",
        }
    }

    /// The name of its `DEFAULT` partition.
    pub fn default_partition(self) -> String {
        format!("{}_default", self.name())
    }
}

impl fmt::Display for PartitionedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A range partition: `[from, to)` of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionRange {
    /// The table.
    pub table: PartitionedTable,
    /// Inclusive lower bound.
    pub from: DateTime<Utc>,
    /// Exclusive upper bound.
    pub to: DateTime<Utc>,
}

impl PartitionRange {
    /// The interval-aligned range of `table` that contains `at`.
    pub fn containing(
        table: PartitionedTable,
        interval: PartitionInterval,
        at: DateTime<Utc>,
    ) -> Self {
        let from = interval.floor(at);
        Self {
            table,
            from,
            to: interval.next(from),
        }
    }

    /// The partition's name: the table, `_p` and the start date (`audit_changes_p20261201`),
    /// whatever the interval, so names sort by time.
    pub fn name(&self) -> String {
        format!("{}_p{}", self.table.name(), self.from.format("%Y%m%d"))
    }

    /// Whether the two ranges share an instant.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.table == other.table && self.from < other.to && other.from < self.to
    }

    fn bounds(&self) -> (String, String) {
        (literal(self.from), literal(self.to))
    }
}

/// A timestamptz literal in UTC, as PostgreSQL prints partition bounds with `TimeZone = UTC`.
fn literal(at: DateTime<Utc>) -> String {
    quote_literal(&at.format("%Y-%m-%d %H:%M:%S%.f+00").to_string())
}

/// Parses the output of `pg_get_expr(relpartbound, oid)` for a range partition, read with
/// `TimeZone = 'UTC'`: `FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')`.
/// `None` for `DEFAULT` or anything else (such as `MINVALUE`).
pub fn parse_range_bound(expr: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let rest = expr.strip_prefix("FOR VALUES FROM ('")?;
    let (from, rest) = rest.split_once("') TO ('")?;
    let to = rest.strip_suffix("')")?;
    Some((parse_timestamp(from)?, parse_timestamp(to)?))
}

fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    // PostgreSQL prints the offset as `+00`, or `+05:30` in such a `TimeZone`.
    DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z")
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// The ranges `partitions ensure` creates for one table: the interval that contains `now`,
/// the `premake` intervals after it, and the interval of every row found in the `DEFAULT`
/// partition (`default_rows` holds one timestamp per such interval, or per row), leaving out
/// every range that overlaps an existing partition. Sorted oldest first.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use threadline_core::partition::{PartitionInterval, PartitionedTable, plan_ensure};
/// let now = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap();
/// let plan = plan_ensure(PartitionedTable::Changes, PartitionInterval::Month, now, 2, &[], &[]);
/// let names: Vec<String> = plan.iter().map(|r| r.name()).collect();
/// assert_eq!(names, ["audit_changes_p20261201", "audit_changes_p20270101", "audit_changes_p20270201"]);
/// ```
pub fn plan_ensure(
    table: PartitionedTable,
    interval: PartitionInterval,
    now: DateTime<Utc>,
    premake: u32,
    existing: &[PartitionRange],
    default_rows: &[DateTime<Utc>],
) -> Vec<PartitionRange> {
    let mut wanted: Vec<PartitionRange> = Vec::new();
    let mut range = PartitionRange::containing(table, interval, now);
    for _ in 0..=premake {
        wanted.push(range);
        range = PartitionRange {
            table,
            from: range.to,
            to: interval.next(range.to),
        };
    }
    wanted.extend(
        default_rows
            .iter()
            .map(|at| PartitionRange::containing(table, interval, *at)),
    );
    wanted.sort();
    wanted.dedup();
    wanted.retain(|r| !existing.iter().any(|e| e.overlaps(r)));
    wanted
}

/// The install DDL of the two partitioned tables (replacing the plain `CREATE TABLE`s of
/// the default layout); `@S` stands for the quoted schema.
pub(crate) fn install_tables(interval: PartitionInterval) -> String {
    let comment = quote_literal(&format!("{LAYOUT_COMMENT_PREFIX}{interval}"));
    format!(
        r#"-- Partitioned layout (guides/scaling.md): range partitions by time, and a DEFAULT
-- partition so that a write never fails when `threadline partitions ensure` lags. A primary
-- key of a partitioned table must contain the partition key, hence (id, occurred_at) and
-- (id, captured_at); ids still come from one identity sequence each, so they stay unique.
CREATE TABLE IF NOT EXISTS @S.audit_transactions (
    id bigint GENERATED ALWAYS AS IDENTITY,
    txid bigint NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor_ref jsonb,
    request_id text,
    correlation_id text,
    remote_ip inet,
    source text,
    meta jsonb,
    trace_id text,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE IF NOT EXISTS @S.audit_transactions_default PARTITION OF @S.audit_transactions DEFAULT;
COMMENT ON TABLE @S.audit_transactions IS {comment};

CREATE TABLE IF NOT EXISTS @S.audit_changes (
    id bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id bigint NOT NULL,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    table_pk jsonb NOT NULL,
    op text NOT NULL,
    data_after jsonb,
    data_before jsonb,
    changed_fields text[],
    changed_from jsonb,
    captured_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_key bigint,
    PRIMARY KEY (id, captured_at)
) PARTITION BY RANGE (captured_at);
CREATE TABLE IF NOT EXISTS @S.audit_changes_default PARTITION OF @S.audit_changes DEFAULT;
COMMENT ON TABLE @S.audit_changes IS {comment};
"#
    )
}

/// The partitioned layout's stand-in for `audit_actions.transaction_id`'s foreign key, which
/// cannot reference a partitioned `audit_transactions` (its unique key includes
/// `occurred_at`): a row trigger that unlinks the actions of a deleted transaction row, as
/// `ON DELETE SET NULL` did. Dropping a partition fires no trigger, so retention unlinks
/// first. `$threadline$` and `@S` are replaced like the rest of the install.
pub(crate) const UNLINK_ACTIONS: &str = r#"
-- Partitioned layout: audit_actions.transaction_id has no foreign key (it could only reference
-- (id, occurred_at)); deleting a transaction row unlinks its actions, as ON DELETE SET NULL did.
CREATE OR REPLACE FUNCTION @S.threadline_unlink_actions() RETURNS trigger
LANGUAGE plpgsql AS $threadline$
BEGIN
    UPDATE @S.audit_actions SET transaction_id = NULL WHERE transaction_id = OLD.id;
    RETURN NULL;
END
$threadline$;
DROP TRIGGER IF EXISTS audit_transactions_unlink_actions ON @S.audit_transactions;
CREATE TRIGGER audit_transactions_unlink_actions AFTER DELETE ON @S.audit_transactions
    FOR EACH ROW EXECUTE FUNCTION @S.threadline_unlink_actions();
"#;

/// The SQL that creates one empty partition (the `DEFAULT` partition holds no row of its
/// range). It is owned by `owner`, the owner of the partitioned table, so that a hardened
/// install stays owned by its owner role whoever runs maintenance.
pub fn create_partition_sql(schema: &Ident, range: &PartitionRange, owner: &Ident) -> String {
    let (from, to) = range.bounds();
    let name = Ident::new(range.name()).unwrap_or_else(|_| unreachable!("short ascii name"));
    format!(
        "CREATE TABLE {schema}.{name} PARTITION OF {schema}.{table}\n    FOR VALUES FROM ({from}) TO ({to});\n\
         ALTER TABLE {schema}.{name} OWNER TO {owner};\n",
        table = range.table.name(),
    )
}

/// The SQL that moves the rows of `range` out of the `DEFAULT` partition into a new partition
/// of their own, as one transaction's statements (the caller wraps them in a transaction).
///
/// 1. Lock `DEFAULT` against writes (`EXCLUSIVE`: reads go on), so no row of the range can
///    land there between the move and the attach;
/// 2. create the partition as a plain table shaped like the parent (with its indexes), and
///    move the rows with one `DELETE ... RETURNING` feeding an `INSERT`;
/// 3. add a `CHECK` constraint equal to the range, so that `ATTACH PARTITION` skips scanning
///    the new table, attach it (`SHARE UPDATE EXCLUSIVE` on the parent, so capture into
///    other partitions and reads go on; `DEFAULT` is scanned once more under `ACCESS
///    EXCLUSIVE`), and drop the constraint.
pub fn move_from_default_sql(schema: &Ident, range: &PartitionRange, owner: &Ident) -> String {
    let (from, to) = range.bounds();
    let name = Ident::new(range.name()).unwrap_or_else(|_| unreachable!("short ascii name"));
    let table = range.table.name();
    let default = range.table.default_partition();
    let key = range.table.key();
    format!(
        "LOCK TABLE {schema}.{default} IN EXCLUSIVE MODE;
CREATE TABLE {schema}.{name} (LIKE {schema}.{table} INCLUDING DEFAULTS INCLUDING INDEXES);
WITH moved AS (
    DELETE FROM {schema}.{default} WHERE {key} >= {from} AND {key} < {to} RETURNING *
)
INSERT INTO {schema}.{name} SELECT * FROM moved;
ALTER TABLE {schema}.{name} ADD CONSTRAINT threadline_range CHECK ({key} >= {from} AND {key} < {to});
ALTER TABLE {schema}.{table} ATTACH PARTITION {schema}.{name}
    FOR VALUES FROM ({from}) TO ({to});
ALTER TABLE {schema}.{name} DROP CONSTRAINT threadline_range;
ALTER TABLE {schema}.{name} OWNER TO {owner};
"
    )
}

/// How retention retires a partition that lies wholly before the cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetiredPartition {
    /// `DROP TABLE` (the default): the space is freed at once.
    #[default]
    Drop,
    /// `DETACH PARTITION` only: the table stays, outside the trail, for an archive or a
    /// later `DROP` by hand.
    Detach,
}

impl RetiredPartition {
    /// `drop` or `detach`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Detach => "detach",
        }
    }
}

impl fmt::Display for RetiredPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetiredPartition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "drop" => Ok(Self::Drop),
            "detach" => Ok(Self::Detach),
            _ => Err(format!(
                "unknown value {s:?} for [storage] retired_partitions; use \"drop\" or \"detach\""
            )),
        }
    }
}

/// The SQL that retires one partition (see [`RetiredPartition`]).
pub fn retire_partition_sql(
    schema: &Ident,
    range: &PartitionRange,
    how: RetiredPartition,
) -> String {
    let name = Ident::new(range.name()).unwrap_or_else(|_| unreachable!("short ascii name"));
    match how {
        RetiredPartition::Drop => format!("DROP TABLE {schema}.{name};\n"),
        RetiredPartition::Detach => format!(
            "ALTER TABLE {schema}.{table} DETACH PARTITION {schema}.{name};\n",
            table = range.table.name()
        ),
    }
}

/// The ranges of `partitions` that lie wholly before `cutoff` (their upper bound is at or
/// before it), oldest first: retention retires them whole.
pub fn wholly_before(partitions: &[PartitionRange], cutoff: DateTime<Utc>) -> Vec<PartitionRange> {
    let mut out: Vec<PartitionRange> = partitions
        .iter()
        .filter(|p| p.to <= cutoff)
        .copied()
        .collect();
    out.sort();
    out
}

/// The `[storage]` section of `threadline.toml`.
///
/// ```
/// use threadline_core::Config;
/// use threadline_core::partition::PartitionInterval;
/// let config = Config::from_toml("[storage]\npartitioned = true\ninterval = \"week\"")?;
/// let storage = config.storage_settings()?;
/// assert_eq!(storage.partitioned(), Some(PartitionInterval::Week));
/// assert_eq!(storage.premake, 3);
/// # Ok::<(), threadline_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StorageSettings {
    /// Whether `install` creates the partitioned layout.
    pub partitioned: bool,
    /// The partition interval (default month).
    pub interval: PartitionInterval,
    /// Future partitions `partitions ensure` keeps, and `doctor` expects (default 3).
    pub premake: u32,
    /// What retention does with a partition wholly before the cutoff.
    pub retired_partitions: RetiredPartition,
}

impl StorageSettings {
    /// The interval when the layout is partitioned.
    pub fn partitioned(&self) -> Option<PartitionInterval> {
        self.partitioned.then_some(self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn intervals_align_in_utc() {
        let t = at(2026, 12, 31, 23);
        assert_eq!(PartitionInterval::Day.floor(t), at(2026, 12, 31, 0));
        assert_eq!(
            PartitionInterval::Day.next(at(2026, 12, 31, 0)),
            at(2027, 1, 1, 0)
        );
        // 2026-12-31 is a Thursday; its ISO week starts on Monday the 28th.
        assert_eq!(PartitionInterval::Week.floor(t), at(2026, 12, 28, 0));
        assert_eq!(
            PartitionInterval::Week.next(at(2026, 12, 28, 0)),
            at(2027, 1, 4, 0)
        );
        assert_eq!(PartitionInterval::Month.floor(t), at(2026, 12, 1, 0));
        assert_eq!(
            PartitionInterval::Month.next(at(2026, 12, 1, 0)),
            at(2027, 1, 1, 0)
        );
        assert_eq!(
            PartitionInterval::Month.next(at(2028, 2, 1, 0)),
            at(2028, 3, 1, 0)
        );
        // A range boundary belongs to the range it starts.
        assert_eq!(
            PartitionInterval::Month.floor(at(2027, 1, 1, 0)),
            at(2027, 1, 1, 0)
        );
    }

    #[test]
    fn interval_names_round_trip_and_bad_ones_say_the_fix() {
        for i in PartitionInterval::ALL {
            assert_eq!(i.as_str().parse::<PartitionInterval>(), Ok(i));
        }
        let err = "year".parse::<PartitionInterval>().unwrap_err().to_string();
        assert!(
            err.contains("\"year\"") && err.contains("day, week or month"),
            "{err}"
        );
        assert!("Month".parse::<PartitionInterval>().is_err());
    }

    #[test]
    fn bounds_round_trip_through_postgres_text() {
        let r = PartitionRange::containing(
            PartitionedTable::Changes,
            PartitionInterval::Week,
            at(2026, 12, 3, 5),
        );
        let text = format!(
            "FOR VALUES FROM ({}) TO ({})",
            literal(r.from),
            literal(r.to)
        );
        assert_eq!(
            text,
            "FOR VALUES FROM ('2026-11-30 00:00:00+00') TO ('2026-12-07 00:00:00+00')"
        );
        assert_eq!(parse_range_bound(&text), Some((r.from, r.to)));
        assert_eq!(parse_range_bound("DEFAULT"), None);
        assert_eq!(
            parse_range_bound(
                "FOR VALUES FROM ('2026-11-30 05:30:00+05:30') TO ('2026-12-07 01:00:00+01')"
            ),
            Some((r.from, r.to))
        );
        assert_eq!(
            parse_range_bound("FOR VALUES FROM (MINVALUE) TO ('2026-11-30 00:00:00+00')"),
            None
        );
        assert_eq!(
            parse_range_bound(
                "FOR VALUES FROM ('2026-11-30 00:00:00.5+00') TO ('2026-12-07 00:00:00+00')"
            )
            .map(|b| b.0),
            Some(at(2026, 11, 30, 0) + chrono::TimeDelta::milliseconds(500))
        );
    }

    #[test]
    fn ensure_plans_now_premake_and_default_rows_minus_existing() {
        let t = PartitionedTable::Transactions;
        let now = at(2026, 12, 3, 9);
        let existing = [PartitionRange::containing(t, PartitionInterval::Month, now)];
        let plan = plan_ensure(
            t,
            PartitionInterval::Month,
            now,
            1,
            &existing,
            &[at(2026, 10, 5, 0), at(2026, 10, 20, 0), at(2026, 12, 9, 0)],
        );
        let names: Vec<String> = plan.iter().map(PartitionRange::name).collect();
        assert_eq!(
            names,
            [
                "audit_transactions_p20261001",
                "audit_transactions_p20270101"
            ]
        );
        // Nothing to do once everything exists: ensure is idempotent.
        let all: Vec<PartitionRange> = existing.iter().chain(&plan).copied().collect();
        assert!(
            plan_ensure(
                t,
                PartitionInterval::Month,
                now,
                1,
                &all,
                &[at(2026, 10, 1, 0)]
            )
            .is_empty()
        );
        // A range overlapping an existing partition of another width is left alone.
        let daily = plan_ensure(t, PartitionInterval::Day, now, 2, &existing, &[]);
        assert!(daily.is_empty(), "{daily:?}");
    }

    #[test]
    fn wholly_before_keeps_the_boundary_partition() {
        let t = PartitionedTable::Changes;
        let parts: Vec<PartitionRange> = [9, 10, 11, 12]
            .map(|m| PartitionRange::containing(t, PartitionInterval::Month, at(2026, m, 2, 0)))
            .to_vec();
        let names = |c| {
            wholly_before(&parts, c)
                .iter()
                .map(PartitionRange::name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(at(2026, 11, 15, 0)),
            ["audit_changes_p20260901", "audit_changes_p20261001"]
        );
        assert_eq!(
            names(at(2026, 11, 1, 0)),
            ["audit_changes_p20260901", "audit_changes_p20261001"]
        );
        assert!(names(at(2026, 9, 30, 0)).is_empty());
    }

    #[test]
    fn retired_partition_values() {
        assert_eq!("detach".parse(), Ok(RetiredPartition::Detach));
        assert!(
            "truncate"
                .parse::<RetiredPartition>()
                .unwrap_err()
                .contains("\"drop\" or \"detach\"")
        );
    }
}
