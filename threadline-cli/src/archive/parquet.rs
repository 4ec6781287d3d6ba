//! Parquet archive files: one row group per batch (bounded), zstd, written with the
//! low-level column API (no arrow); JSON columns as JSON text, timestamps as UTC
//! microseconds, ids as INT64. The schemas are documented in guides/scaling.md.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::reader::ColumnReader;
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use threadline_sqlx::{ArchiveBatch, ArchivedChange, ArchivedTransaction};

use super::IdStats;

/// The Parquet schema of `audit_changes` archives.
pub(crate) const CHANGES_SCHEMA: &str = "message audit_changes {
  required int64 id;
  required int64 transaction_id;
  required binary table_schema (STRING);
  required binary table_name (STRING);
  required binary table_pk (JSON);
  required binary op (STRING);
  optional binary data_after (JSON);
  optional binary data_before (JSON);
  optional group changed_fields (LIST) {
    repeated group list {
      required binary element (STRING);
    }
  }
  optional binary changed_from (JSON);
  required int64 captured_at (TIMESTAMP(MICROS,true));
}";

/// The Parquet schema of `audit_transactions` archives.
pub(crate) const TRANSACTIONS_SCHEMA: &str = "message audit_transactions {
  required int64 id;
  required int64 txid;
  required int64 occurred_at (TIMESTAMP(MICROS,true));
  optional binary actor_ref (JSON);
  optional binary request_id (STRING);
  optional binary correlation_id (STRING);
  optional binary remote_ip (STRING);
  optional binary source (STRING);
  optional binary meta (JSON);
  optional binary trace_id (STRING);
}";

/// A Parquet file being written.
pub(crate) struct ParquetSink {
    writer: SerializedFileWriter<File>,
}

impl ParquetSink {
    pub(crate) fn new(file: File, table: &str) -> anyhow::Result<Self> {
        let schema = if table == "audit_changes" {
            CHANGES_SCHEMA
        } else {
            TRANSACTIONS_SCHEMA
        };
        let schema = Arc::new(parse_message_type(schema).context("archive schema")?);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_created_by(format!("threadline {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            writer: SerializedFileWriter::new(file, schema, Arc::new(props))?,
        })
    }

    /// Writes one batch as one row group.
    pub(crate) fn write(&mut self, batch: &ArchiveBatch) -> anyhow::Result<()> {
        let mut columns: Vec<Column> = match batch {
            ArchiveBatch::Changes(rows) => change_columns(rows),
            ArchiveBatch::Transactions(rows) => transaction_columns(rows),
            _ => anyhow::bail!("unknown archive batch"),
        };
        let mut group = self.writer.next_row_group()?;
        let mut index = 0;
        while let Some(mut column) = group.next_column()? {
            let data = columns
                .get_mut(index)
                .context("more Parquet columns than archive columns")?;
            match (column.untyped(), data) {
                (ColumnWriter::Int64ColumnWriter(w), Column::Int64(values)) => {
                    w.write_batch(values, None, None)?;
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Column::Bytes(values, def)) => {
                    w.write_batch(values, def.as_deref(), None)?;
                }
                (ColumnWriter::ByteArrayColumnWriter(w), Column::List(values, def, rep)) => {
                    w.write_batch(values, Some(def), Some(rep))?;
                }
                _ => anyhow::bail!("archive column {index} does not match the Parquet schema"),
            }
            column.close()?;
            index += 1;
        }
        group.close()?;
        Ok(())
    }

    /// Writes the footer and flushes.
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        let file = self.writer.into_inner()?;
        drop(file);
        Ok(())
    }
}

enum Column {
    Int64(Vec<i64>),
    /// Values and, for an optional column, definition levels.
    Bytes(Vec<ByteArray>, Option<Vec<i16>>),
    /// A list of strings: values, definition and repetition levels.
    List(Vec<ByteArray>, Vec<i16>, Vec<i16>),
}

fn required<'a>(values: impl Iterator<Item = &'a str>) -> Column {
    Column::Bytes(values.map(ByteArray::from).collect(), None)
}

fn optional<'a>(values: impl Iterator<Item = Option<&'a str>>) -> Column {
    let mut out = Vec::new();
    let mut def = Vec::new();
    for v in values {
        def.push(i16::from(v.is_some()));
        if let Some(v) = v {
            out.push(ByteArray::from(v));
        }
    }
    Column::Bytes(out, Some(def))
}

fn micros(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

fn change_columns(rows: &[ArchivedChange]) -> Vec<Column> {
    let mut values = Vec::new();
    let mut def = Vec::new();
    let mut rep = Vec::new();
    for r in rows {
        match &r.changed_fields {
            None => {
                def.push(0);
                rep.push(0);
            }
            Some(fields) if fields.is_empty() => {
                def.push(1);
                rep.push(0);
            }
            Some(fields) => {
                for (n, f) in fields.iter().enumerate() {
                    def.push(2);
                    rep.push(i16::from(n > 0));
                    values.push(ByteArray::from(f.as_str()));
                }
            }
        }
    }
    vec![
        Column::Int64(rows.iter().map(|r| r.id).collect()),
        Column::Int64(rows.iter().map(|r| r.transaction_id).collect()),
        required(rows.iter().map(|r| r.table_schema.as_str())),
        required(rows.iter().map(|r| r.table_name.as_str())),
        required(rows.iter().map(|r| r.table_pk.as_str())),
        required(rows.iter().map(|r| r.op.as_str())),
        optional(rows.iter().map(|r| r.data_after.as_deref())),
        optional(rows.iter().map(|r| r.data_before.as_deref())),
        Column::List(values, def, rep),
        optional(rows.iter().map(|r| r.changed_from.as_deref())),
        Column::Int64(rows.iter().map(|r| micros(&r.captured_at)).collect()),
    ]
}

fn transaction_columns(rows: &[ArchivedTransaction]) -> Vec<Column> {
    vec![
        Column::Int64(rows.iter().map(|r| r.id).collect()),
        Column::Int64(rows.iter().map(|r| r.txid).collect()),
        Column::Int64(rows.iter().map(|r| micros(&r.occurred_at)).collect()),
        optional(rows.iter().map(|r| r.actor_ref.as_deref())),
        optional(rows.iter().map(|r| r.request_id.as_deref())),
        optional(rows.iter().map(|r| r.correlation_id.as_deref())),
        optional(rows.iter().map(|r| r.remote_ip.as_deref())),
        optional(rows.iter().map(|r| r.source.as_deref())),
        optional(rows.iter().map(|r| r.meta.as_deref())),
        optional(rows.iter().map(|r| r.trace_id.as_deref())),
    ]
}

/// Reads the `id` column (the first) of every row group back from `path`.
pub(crate) fn read_ids(path: &Path) -> anyhow::Result<IdStats> {
    let reader = SerializedFileReader::try_from(path)
        .with_context(|| format!("cannot read back {}", path.display()))?;
    let mut stats = IdStats::default();
    let mut values = Vec::with_capacity(8192);
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g)?;
        let ColumnReader::Int64ColumnReader(mut ids) = group.get_column_reader(0)? else {
            anyhow::bail!("{}: the first column is not INT64 ids", path.display());
        };
        loop {
            values.clear();
            let (records, _, _) = ids.read_records(8192, None, None, &mut values)?;
            if records == 0 {
                break;
            }
            values.iter().for_each(|id| stats.add(*id));
        }
    }
    Ok(stats)
}
