//! The reading side of `threadline archive`: which ranges of the trail lie wholly before a
//! cutoff (whole partitions, or calendar months of a plain trail), their rows streamed in
//! bounded batches through a server-side cursor, and dropping the partitions whose archive
//! verified. The file formats live in the CLI.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use threadline_core::partition::{
    PartitionInterval, PartitionRange, PartitionedTable, wholly_before,
};
use threadline_core::{Ident, InstallOptions};

use crate::error::{Error, Result};
use crate::partition::{StorageLayout, begin_maintenance, layout_on, partitions_on, q};
use crate::sql;

const ARCHIVE_LOCK: &str = "threadline archive";

/// One range of one audit table that goes into one archive file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ArchiveUnit {
    /// `audit_changes` or `audit_transactions`.
    pub table: &'static str,
    /// The partition holding exactly these rows (`None` on a plain trail, where the unit is
    /// a calendar month of rows).
    pub partition: Option<String>,
    /// Inclusive lower bound of the partition key.
    pub from: DateTime<Utc>,
    /// Exclusive upper bound.
    pub to: DateTime<Utc>,
    /// Rows in the range (exact).
    pub rows: u64,
    /// Lowest id (`None` when empty).
    pub min_id: Option<i64>,
    /// Highest id.
    pub max_id: Option<i64>,
}

impl ArchiveUnit {
    fn range(&self) -> PartitionRange {
        PartitionRange {
            table: table_of(self.table),
            from: self.from,
            to: self.to,
        }
    }

    /// The file name stem: table and range, `audit_changes_20261101_20261201`.
    pub fn file_stem(&self) -> String {
        format!(
            "{}_{}_{}",
            self.table,
            self.from.format("%Y%m%d"),
            self.to.format("%Y%m%d")
        )
    }
}

fn table_of(name: &str) -> PartitionedTable {
    if name == PartitionedTable::Changes.name() {
        PartitionedTable::Changes
    } else {
        PartitionedTable::Transactions
    }
}

/// One archived change: every column of `audit_changes`, JSON columns as their JSON text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
#[non_exhaustive]
pub struct ArchivedChange {
    /// `id`.
    pub id: i64,
    /// `transaction_id`.
    pub transaction_id: i64,
    /// `table_schema`.
    pub table_schema: String,
    /// `table_name`.
    pub table_name: String,
    /// `table_pk` as JSON text.
    pub table_pk: String,
    /// `op`.
    pub op: String,
    /// `data_after` as JSON text.
    pub data_after: Option<String>,
    /// `data_before` as JSON text.
    pub data_before: Option<String>,
    /// `changed_fields`.
    pub changed_fields: Option<Vec<String>>,
    /// `changed_from` as JSON text.
    pub changed_from: Option<String>,
    /// `captured_at`.
    pub captured_at: DateTime<Utc>,
}

/// One archived transaction row: every column of `audit_transactions`, JSON as text and
/// `remote_ip` as its text form.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
#[non_exhaustive]
pub struct ArchivedTransaction {
    /// `id`.
    pub id: i64,
    /// `txid`.
    pub txid: i64,
    /// `occurred_at`.
    pub occurred_at: DateTime<Utc>,
    /// `actor_ref` as JSON text.
    pub actor_ref: Option<String>,
    /// `request_id`.
    pub request_id: Option<String>,
    /// `correlation_id`.
    pub correlation_id: Option<String>,
    /// `remote_ip` as text (`host(remote_ip)`: the address without a prefix length).
    pub remote_ip: Option<String>,
    /// `source`.
    pub source: Option<String>,
    /// `meta` as JSON text.
    pub meta: Option<String>,
    /// `trace_id` (32 hex digits).
    pub trace_id: Option<String>,
}

/// A batch of rows of one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveBatch {
    /// Rows of `audit_changes`.
    Changes(Vec<ArchivedChange>),
    /// Rows of `audit_transactions`.
    Transactions(Vec<ArchivedTransaction>),
}

const CHANGE_COLUMNS: &str =
    "id, transaction_id, table_schema, table_name, table_pk::text AS table_pk, op,
    data_after::text AS data_after, data_before::text AS data_before, changed_fields,
    changed_from::text AS changed_from, captured_at";
const TRANSACTION_COLUMNS: &str = "id, txid, occurred_at, actor_ref::text AS actor_ref, request_id,
    correlation_id, host(remote_ip) AS remote_ip, source, meta::text AS meta, trace_id";

/// What happened to one partition at `--drop`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DroppedUnit {
    /// The partition.
    pub partition: String,
    /// `dropped`, or `kept` with the reason.
    pub outcome: String,
}

/// An archive run's hold on the trail: a connection of its own with a session-level advisory
/// lock, so two archive runs never overlap (the second fails at once).
#[derive(Debug)]
pub struct ArchiveSession {
    conn: PgConnection,
    install: InstallOptions,
    layout: StorageLayout,
}

impl ArchiveSession {
    /// Opens the session: checks the install and takes the lock.
    pub async fn open(pool: &PgPool, install: &InstallOptions) -> Result<Self> {
        let mut conn = pool.acquire().await?.detach();
        let layout = layout_on(&mut conn, &install.schema).await?;
        if layout == StorageLayout::NotInstalled {
            return Err(Error::invalid(
                "archive",
                format!(
                    "Threadline is not installed in schema {}; check --schema and the database",
                    install.schema.as_str()
                ),
            ));
        }
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(format!("{ARCHIVE_LOCK} {}", install.schema.as_str()))
                .fetch_one(&mut conn)
                .await?;
        if !locked {
            return Err(Error::invalid(
                "archive",
                "another archive run of this audit schema is running; wait for it to finish, then run again",
            ));
        }
        sqlx::query("SELECT set_config('TimeZone', 'UTC', false)")
            .execute(&mut conn)
            .await?;
        Ok(Self {
            conn,
            install: install.clone(),
            layout,
        })
    }

    /// Whether the trail is partitioned.
    pub fn partitioned(&self) -> bool {
        matches!(self.layout, StorageLayout::Partitioned { .. })
    }

    /// The units wholly before `before`, transactions first, each oldest first: the
    /// partitions whose upper bound is at or before it, or on a plain trail the calendar
    /// months (UTC) of rows that end at or before it. Fails when a `DEFAULT` partition holds
    /// rows before the cutoff (they belong in partitions of their own first).
    pub async fn plan(&mut self, before: DateTime<Utc>) -> Result<Vec<ArchiveUnit>> {
        let schema = self.install.schema.clone();
        let mut units = Vec::new();
        for table in PartitionedTable::ALL {
            let ranges: Vec<(PartitionRange, Option<String>)> = if self.partitioned() {
                let default: i64 = sqlx::query_scalar(sql::generated(format!(
                    "SELECT count(*) FROM {schema}.{} WHERE {} < $1",
                    q(&table.default_partition()),
                    table.key()
                )))
                .bind(before)
                .fetch_one(&mut self.conn)
                .await?;
                if default > 0 {
                    return Err(Error::invalid(
                        "archive",
                        format!(
                            "{} holds {default} rows before the cutoff; run `threadline partitions ensure` to move them into partitions of their own, then archive again",
                            table.default_partition()
                        ),
                    ));
                }
                let parts = partitions_on(&mut self.conn, &schema, table).await?;
                let ranges: Vec<PartitionRange> = parts.iter().filter_map(|p| p.range).collect();
                wholly_before(&ranges, before)
                    .into_iter()
                    .map(|r| (r, Some(r.name())))
                    .collect()
            } else {
                let months: Vec<DateTime<Utc>> = sqlx::query_scalar(sql::generated(format!(
                    "SELECT DISTINCT date_trunc('month', {key}, 'UTC') FROM {schema}.{name}
                     WHERE {key} < $1 ORDER BY 1",
                    key = table.key(),
                    name = table.name()
                )))
                .bind(PartitionInterval::Month.floor(before))
                .fetch_all(&mut self.conn)
                .await?;
                months
                    .into_iter()
                    .map(|m| {
                        (
                            PartitionRange::containing(table, PartitionInterval::Month, m),
                            None,
                        )
                    })
                    .filter(|(r, _)| r.to <= before)
                    .collect()
            };
            for (range, partition) in ranges {
                let (rows, min_id, max_id): (i64, Option<i64>, Option<i64>) =
                    sqlx::query_as(sql::generated(format!(
                        "SELECT count(*), min(id), max(id) FROM {} WHERE {key} >= $1 AND {key} < $2",
                        source(&schema, &range, partition.as_deref()),
                        key = table.key()
                    )))
                    .bind(range.from)
                    .bind(range.to)
                    .fetch_one(&mut self.conn)
                    .await?;
                units.push(ArchiveUnit {
                    table: table.name(),
                    partition,
                    from: range.from,
                    to: range.to,
                    rows: rows as u64,
                    min_id,
                    max_id,
                });
            }
        }
        Ok(units)
    }

    /// Streams the rows of `unit` in batches of at most `batch_size`, through a server-side
    /// cursor in one `REPEATABLE READ` read-only transaction, so memory stays flat whatever
    /// the unit's size. `on_batch` returns an error to stop.
    pub async fn read<E>(
        &mut self,
        unit: &ArchiveUnit,
        batch_size: u32,
        mut on_batch: impl FnMut(ArchiveBatch) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let range = unit.range();
        let schema = self.install.schema.clone();
        let mut tx = sqlx::Connection::begin(&mut self.conn).await?;
        sqlx::raw_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let columns = match range.table {
            PartitionedTable::Changes => CHANGE_COLUMNS,
            PartitionedTable::Transactions => TRANSACTION_COLUMNS,
        };
        let (from, to) = (
            threadline_core::quote_literal(&range.from.to_rfc3339()),
            threadline_core::quote_literal(&range.to.to_rfc3339()),
        );
        // One cursor name per table: a statement's row shape is cached by its text.
        let cursor = format!("threadline_archive_{}", range.table.name());
        sqlx::raw_sql(sql::generated(format!(
            "DECLARE {cursor} NO SCROLL CURSOR FOR
             SELECT {columns} FROM {src} WHERE {key} >= {from}::timestamptz AND {key} < {to}::timestamptz",
            src = source(&schema, &range, unit.partition.as_deref()),
            key = range.table.key(),
        )))
        .execute(&mut *tx)
        .await?;
        let fetch = format!("FETCH {} FROM {cursor}", batch_size.max(1));
        loop {
            let batch = match range.table {
                PartitionedTable::Changes => {
                    let rows: Vec<ArchivedChange> = sqlx::query_as(sql::generated(fetch.clone()))
                        .persistent(false)
                        .fetch_all(&mut *tx)
                        .await?;
                    if rows.is_empty() {
                        break;
                    }
                    ArchiveBatch::Changes(rows)
                }
                PartitionedTable::Transactions => {
                    let rows: Vec<ArchivedTransaction> =
                        sqlx::query_as(sql::generated(fetch.clone()))
                            .persistent(false)
                            .fetch_all(&mut *tx)
                            .await?;
                    if rows.is_empty() {
                        break;
                    }
                    ArchiveBatch::Transactions(rows)
                }
            };
            if let Err(e) = on_batch(batch) {
                tx.rollback().await?;
                return Ok(Err(e));
            }
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Detaches and drops the partitions of `units` (whose archives the caller verified),
    /// changes first. A transaction partition is kept while a change outside the dropped
    /// partitions still belongs to one of its transactions, so no change ever loses its
    /// transaction row; a partition whose rows changed since the plan is kept too. Actions
    /// linked to a dropped transaction are unlinked, as retention does. Each partition goes in its own short transaction under the maintenance lock
    /// that `partitions ensure` and retention take. Fails on a plain trail.
    pub async fn drop_partitions(
        &mut self,
        units: &[ArchiveUnit],
        lock_timeout: std::time::Duration,
    ) -> Result<Vec<DroppedUnit>> {
        if !self.partitioned() {
            return Err(Error::invalid(
                "drop",
                "--drop needs the partitioned layout; on a plain trail run `threadline retention purge` after archiving",
            ));
        }
        let schema = self.install.schema.clone();
        let mut out = Vec::new();
        let mut ordered: Vec<&ArchiveUnit> = units.iter().collect();
        ordered.sort_by_key(|u| (u.table != PartitionedTable::Changes.name(), u.from));
        for unit in ordered {
            let Some(partition) = &unit.partition else {
                continue;
            };
            let name = q(partition);
            let table = unit.table;
            let mut tx = begin_maintenance(
                &mut self.conn,
                lock_timeout,
                crate::partition::ENSURE_LOCK,
                &schema,
            )
            .await?;
            // Writers into this partition finish first, and new ones wait; then the rows must
            // still be exactly those archived.
            sqlx::raw_sql(sql::generated(format!(
                "LOCK TABLE {schema}.{name} IN SHARE ROW EXCLUSIVE MODE"
            )))
            .execute(&mut *tx)
            .await?;
            let (rows, min_id, max_id): (i64, Option<i64>, Option<i64>) =
                sqlx::query_as(sql::generated(format!(
                    "SELECT count(*), min(id), max(id) FROM {schema}.{name}"
                )))
                .fetch_one(&mut *tx)
                .await?;
            if (rows as u64, min_id, max_id) != (unit.rows, unit.min_id, unit.max_id) {
                tx.commit().await?;
                out.push(DroppedUnit {
                    partition: partition.clone(),
                    outcome: format!(
                        "kept: it holds {rows} rows now, {} when archived; run archive again",
                        unit.rows
                    ),
                });
                continue;
            }
            if unit.table == PartitionedTable::Transactions.name() {
                let straddlers: i64 = sqlx::query_scalar(sql::generated(format!(
                    "SELECT count(*) FROM {schema}.audit_changes c
                     WHERE c.transaction_id BETWEEN (SELECT min(id) FROM {schema}.{name})
                                                AND (SELECT max(id) FROM {schema}.{name})
                       AND EXISTS (SELECT 1 FROM {schema}.{name} t WHERE t.id = c.transaction_id)"
                )))
                .fetch_one(&mut *tx)
                .await?;
                if straddlers > 0 {
                    tx.commit().await?;
                    out.push(DroppedUnit {
                        partition: partition.clone(),
                        outcome: format!(
                            "kept: {straddlers} changes still in the trail belong to its transactions (drop it once their partitions are archived)"
                        ),
                    });
                    continue;
                }
                sqlx::raw_sql(sql::generated(format!(
                    "UPDATE {schema}.audit_actions SET transaction_id = NULL
                     WHERE transaction_id BETWEEN (SELECT min(id) FROM {schema}.{name})
                                              AND (SELECT max(id) FROM {schema}.{name})
                       AND transaction_id IN (SELECT id FROM {schema}.{name})"
                )))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::raw_sql(sql::generated(format!(
                "ALTER TABLE {schema}.{table} DETACH PARTITION {schema}.{name};
                 DROP TABLE {schema}.{name};"
            )))
            .execute(&mut *tx)
            .await?;
            // The seals whose rows went with it are marked purged: verification then starts
            // from the oldest retained seal (the archive's manifest carries the dropped ones).
            crate::seal::record_purged_seals(&mut tx, &schema).await?;
            tx.commit().await?;
            tracing::info!(target: "threadline::archive", partition = %partition, "threadline archive dropped a partition");
            out.push(DroppedUnit {
                partition: partition.clone(),
                outcome: "dropped".to_owned(),
            });
        }
        Ok(out)
    }

    /// The seals covering the transactions of `units` (see [`Threadline::seals_covering`]):
    /// what an archive carries so that it can be checked against the chain offline. Empty when
    /// the units hold no transactions or nothing is sealed.
    ///
    /// [`Threadline::seals_covering`]: crate::Threadline::seals_covering
    pub async fn seals(&mut self, units: &[ArchiveUnit]) -> Result<Vec<crate::Seal>> {
        let ids = units
            .iter()
            .filter(|u| u.table == PartitionedTable::Transactions.name())
            .filter_map(|u| Some((u.min_id?, u.max_id?)));
        let Some((lo, hi)) = ids.reduce(|(a, b), (c, d)| (a.min(c), b.max(d))) else {
            return Ok(Vec::new());
        };
        let schema = self.install.schema.clone();
        let (from, to): (Option<i64>, Option<i64>) = sqlx::query_as(sql::generated(format!(
            "SELECT min(txid), max(txid) FROM {schema}.audit_transactions WHERE id BETWEEN $1 AND $2"
        )))
        .bind(lo)
        .bind(hi)
        .fetch_one(&mut self.conn)
        .await?;
        let (Some(from), Some(to)) = (from, to) else {
            return Ok(Vec::new());
        };
        crate::seal::seals_overlapping(&mut self.conn, &schema, from, to + 1).await
    }

    /// Releases the lock and closes the connection.
    pub async fn close(self) -> Result<()> {
        sqlx::Connection::close(self.conn).await?;
        Ok(())
    }
}

/// The relation a unit's rows come from: its partition, or the plain table.
fn source(schema: &Ident, range: &PartitionRange, partition: Option<&str>) -> String {
    match partition {
        Some(p) => format!("{schema}.{}", q(p)),
        None => format!("{schema}.{}", range.table.name()),
    }
}
