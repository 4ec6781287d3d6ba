//! NDJSON archive files: one JSON object per row, the columns by name, JSON columns embedded
//! as JSON, timestamps as RFC 3339 UTC with microseconds.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value};
use threadline_sqlx::ArchiveBatch;

use super::IdStats;

/// An NDJSON file being written.
pub(crate) struct NdjsonSink {
    out: BufWriter<File>,
}

/// A JSON column embedded as its text (PostgreSQL's `jsonb` output is valid JSON, and
/// re-parsing it could round numbers).
fn raw(out: &mut String, key: &str, text: Option<&str>) {
    field(out, key);
    out.push_str(text.unwrap_or("null"));
}

fn field(out: &mut String, key: &str) {
    if out.len() > 1 {
        out.push(',');
    }
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

fn value(out: &mut String, key: &str, v: impl serde::Serialize) -> anyhow::Result<()> {
    field(out, key);
    out.push_str(&serde_json::to_string(&v)?);
    Ok(())
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl NdjsonSink {
    pub(crate) fn new(file: File) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, file),
        }
    }

    pub(crate) fn write(&mut self, batch: &ArchiveBatch) -> anyhow::Result<()> {
        match batch {
            ArchiveBatch::Changes(rows) => {
                for r in rows {
                    let mut line = String::from("{");
                    value(&mut line, "id", r.id)?;
                    value(&mut line, "transaction_id", r.transaction_id)?;
                    value(&mut line, "table_schema", &r.table_schema)?;
                    value(&mut line, "table_name", &r.table_name)?;
                    raw(&mut line, "table_pk", Some(&r.table_pk));
                    value(&mut line, "op", &r.op)?;
                    raw(&mut line, "data_after", r.data_after.as_deref());
                    raw(&mut line, "data_before", r.data_before.as_deref());
                    value(&mut line, "changed_fields", &r.changed_fields)?;
                    raw(&mut line, "changed_from", r.changed_from.as_deref());
                    value(&mut line, "captured_at", time(&r.captured_at))?;
                    line.push_str("}\n");
                    self.out.write_all(line.as_bytes())?;
                }
            }
            ArchiveBatch::Transactions(rows) => {
                for r in rows {
                    let mut line = String::from("{");
                    value(&mut line, "id", r.id)?;
                    value(&mut line, "txid", r.txid)?;
                    value(&mut line, "occurred_at", time(&r.occurred_at))?;
                    raw(&mut line, "actor_ref", r.actor_ref.as_deref());
                    value(&mut line, "request_id", &r.request_id)?;
                    value(&mut line, "correlation_id", &r.correlation_id)?;
                    value(&mut line, "remote_ip", &r.remote_ip)?;
                    value(&mut line, "source", &r.source)?;
                    raw(&mut line, "meta", r.meta.as_deref());
                    value(&mut line, "trace_id", &r.trace_id)?;
                    line.push_str("}\n");
                    self.out.write_all(line.as_bytes())?;
                }
            }
            _ => anyhow::bail!("unknown archive batch"),
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// Reads the `id` of every line back from `path`.
pub(crate) fn read_ids(path: &Path) -> anyhow::Result<IdStats> {
    let file = File::open(path).with_context(|| format!("cannot read back {}", path.display()))?;
    let mut stats = IdStats::default();
    for line in BufReader::new(file).lines() {
        let row: Map<String, Value> = serde_json::from_str(&line?)?;
        let id = row
            .get("id")
            .and_then(Value::as_i64)
            .with_context(|| format!("{}: a line without an integer id", path.display()))?;
        stats.add(id);
    }
    Ok(stats)
}
