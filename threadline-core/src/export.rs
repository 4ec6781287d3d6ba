//! Export encoders (SPEC §7): CSV, a JSON document and NDJSON, deterministic byte for byte.
//!
//! Each exported change carries its transaction (actor, request id, correlation id, ...) and
//! the actions linked to that transaction. JSON objects are written with their keys sorted at
//! every level (also inside row images), and timestamps as ISO 8601 UTC with microseconds
//! (`2026-01-31T12:00:00.000000Z`), so the same trail always exports to the same bytes.

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::AuditAction;
use crate::audit::{AuditChange, AuditTransaction};

/// The `format_version` of the JSON document.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

/// The CSV header. JSON cells hold canonical JSON; SQL NULL is an empty cell.
pub const CSV_HEADER: [&str; 17] = [
    "id",
    "transaction_id",
    "captured_at",
    "table_schema",
    "table_name",
    "op",
    "table_pk",
    "data_after",
    "data_before",
    "changed_fields",
    "changed_from",
    "actor_ref",
    "request_id",
    "correlation_id",
    "trace_id",
    "transaction",
    "actions",
];

/// One exported change with its transaction and the transaction's actions.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ExportRecord {
    /// The change.
    pub change: AuditChange,
    /// Its transaction; `None` only for an orphan change (see `doctor`).
    pub transaction: Option<AuditTransaction>,
    /// Actions linked to that transaction, in the order they were recorded.
    pub actions: Vec<AuditAction>,
}

impl ExportRecord {
    /// A record.
    pub fn new(
        change: AuditChange,
        transaction: Option<AuditTransaction>,
        actions: Vec<AuditAction>,
    ) -> Self {
        Self {
            change,
            transaction,
            actions,
        }
    }

    /// The record as one JSON object: the change's columns, `transaction` and `actions`.
    ///
    /// ```
    /// # use threadline_core::{AuditChange, ChangeOp, ExportRecord};
    /// # let change = AuditChange { id: 1, transaction_id: 2, table_schema: "public".into(),
    /// #     table_name: "posts".into(), table_pk: serde_json::json!({"id": 7}), op: ChangeOp::Insert,
    /// #     data_after: Some(serde_json::json!({"id": 7})), data_before: None, changed_fields: None,
    /// #     changed_from: None, captured_at: chrono::DateTime::UNIX_EPOCH, actor_ref: None };
    /// let json = ExportRecord::new(change, None, vec![]).to_json();
    /// assert_eq!(json["captured_at"], "1970-01-01T00:00:00.000000Z");
    /// assert_eq!(json["actions"], serde_json::json!([]));
    /// ```
    pub fn to_json(&self) -> Value {
        let c = &self.change;
        let transaction = self.transaction.as_ref().map(|t| {
            json!({
                "id": t.id,
                "txid": t.txid,
                "occurred_at": export_timestamp(t.occurred_at),
                "actor_ref": t.actor_ref,
                "request_id": t.request_id,
                "correlation_id": t.correlation_id,
                "remote_ip": t.remote_ip.map(|ip| ip.to_string()),
                "source": t.source,
                "meta": t.meta,
                "trace_id": t.trace_id,
            })
        });
        json!({
            "id": c.id,
            "transaction_id": c.transaction_id,
            "captured_at": export_timestamp(c.captured_at),
            "table_schema": c.table_schema,
            "table_name": c.table_name,
            "op": c.op.as_str(),
            "table_pk": c.table_pk,
            "data_after": c.data_after,
            "data_before": c.data_before,
            "changed_fields": c.changed_fields,
            "changed_from": c.changed_from,
            "transaction": transaction,
            "actions": self.actions.iter().map(AuditAction::to_export_json).collect::<Vec<_>>(),
        })
    }

    /// The record as a CSV row in [`CSV_HEADER`] order.
    pub fn csv_row(&self) -> [String; CSV_HEADER.len()] {
        let c = &self.change;
        let t = self.transaction.as_ref();
        let record = self.to_json();
        let cell = |v: &Value| {
            if v.is_null() {
                String::new()
            } else {
                canonical(v)
            }
        };
        let text = |v: Option<&String>| v.cloned().unwrap_or_default();
        [
            c.id.to_string(),
            c.transaction_id.to_string(),
            export_timestamp(c.captured_at),
            c.table_schema.clone(),
            c.table_name.clone(),
            c.op.as_str().to_owned(),
            cell(&record["table_pk"]),
            cell(&record["data_after"]),
            cell(&record["data_before"]),
            cell(&record["changed_fields"]),
            cell(&record["changed_from"]),
            t.and_then(|t| t.actor_ref.as_ref())
                .map(canonical)
                .unwrap_or_default(),
            text(t.and_then(|t| t.request_id.as_ref())),
            text(t.and_then(|t| t.correlation_id.as_ref())),
            text(t.and_then(|t| t.trace_id.as_ref())),
            cell(&record["transaction"]),
            cell(&record["actions"]),
        ]
    }
}

/// A timestamp as written in exports: ISO 8601 UTC, microseconds, `Z`.
pub fn export_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// JSON text with object keys sorted at every level (whatever order the map had).
///
/// ```
/// let v = serde_json::json!({"b": 1, "a": {"d": [true, null], "c": "x"}});
/// assert_eq!(threadline_core::canonical_json(&v), r#"{"a":{"c":"x","d":[true,null]},"b":1}"#);
/// ```
pub fn canonical_json(value: &Value) -> String {
    canonical(value)
}

fn canonical(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(&mut out, value).expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn write_canonical(out: &mut impl Write, value: &Value) -> io::Result<()> {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.write_all(b"{")?;
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, key)?;
                out.write_all(b":")?;
                write_canonical(out, &map[key])?;
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_canonical(out, item)?;
            }
            out.write_all(b"]")
        }
        scalar => Ok(serde_json::to_writer(&mut *out, scalar)?),
    }
}

/// Which encoding to write.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180 CSV with [`CSV_HEADER`].
    Csv,
    /// One JSON document `{"changes":[...],"format_version":1,"generated_at":"..."}`.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// Writes records one at a time, so an export of any size needs memory for one record only.
///
/// ```
/// use threadline_core::{ExportFormat, ExportWriter};
/// let mut out = Vec::new();
/// let mut writer = ExportWriter::new(&mut out, ExportFormat::Json, chrono::DateTime::UNIX_EPOCH)?;
/// writer.finish()?;
/// assert_eq!(String::from_utf8(out)?,
///     "{\"changes\":[],\"format_version\":1,\"generated_at\":\"1970-01-01T00:00:00.000000Z\"}\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ExportWriter<W: Write> {
    out: Inner<W>,
    generated_at: DateTime<Utc>,
    written: u64,
}

impl<W: Write> std::fmt::Debug for ExportWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportWriter").finish_non_exhaustive()
    }
}

enum Inner<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Json(W),
    Ndjson(W),
}

impl<W: Write> ExportWriter<W> {
    /// Starts an export: writes the CSV header or the opening of the JSON document.
    /// `generated_at` goes into the JSON document.
    pub fn new(out: W, format: ExportFormat, generated_at: DateTime<Utc>) -> io::Result<Self> {
        let out = match format {
            ExportFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                w.write_record(CSV_HEADER).map_err(csv_error)?;
                Inner::Csv(Box::new(w))
            }
            ExportFormat::Json => {
                let mut out = out;
                out.write_all(b"{\"changes\":[")?;
                Inner::Json(out)
            }
            ExportFormat::Ndjson => Inner::Ndjson(out),
        };
        Ok(Self {
            out,
            generated_at,
            written: 0,
        })
    }

    /// Writes one record.
    pub fn write(&mut self, record: &ExportRecord) -> io::Result<()> {
        match &mut self.out {
            Inner::Csv(w) => w.write_record(record.csv_row()).map_err(csv_error)?,
            Inner::Json(w) => {
                if self.written > 0 {
                    w.write_all(b",")?;
                }
                write_canonical(w, &record.to_json())?;
            }
            Inner::Ndjson(w) => {
                write_canonical(w, &record.to_json())?;
                w.write_all(b"\n")?;
            }
        }
        self.written += 1;
        Ok(())
    }

    /// Records written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Ends the export (closes the JSON document), flushes the writer and returns it.
    pub fn finish(self) -> io::Result<W> {
        match self.out {
            Inner::Csv(w) => {
                let mut w = w.into_inner().map_err(|e| e.into_error())?;
                w.flush()?;
                Ok(w)
            }
            Inner::Json(mut w) => {
                writeln!(
                    w,
                    "],\"format_version\":{EXPORT_FORMAT_VERSION},\"generated_at\":\"{}\"}}",
                    export_timestamp(self.generated_at)
                )?;
                w.flush()?;
                Ok(w)
            }
            Inner::Ndjson(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// Encodes records into a string (for bounded exports).
pub fn encode_export(
    records: &[ExportRecord],
    format: ExportFormat,
    generated_at: DateTime<Utc>,
) -> String {
    let mut writer =
        ExportWriter::new(Vec::new(), format, generated_at).expect("writing to a Vec cannot fail");
    for record in records {
        writer.write(record).expect("writing to a Vec cannot fail");
    }
    let bytes = writer.finish().expect("writing to a Vec cannot fail");
    String::from_utf8(bytes).expect("exports are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChangeOp;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 123_456_000).unwrap()
    }

    fn record() -> ExportRecord {
        let change = AuditChange {
            id: 10,
            transaction_id: 3,
            table_schema: "public".into(),
            table_name: "posts".into(),
            table_pk: json!({"id": 7}),
            op: ChangeOp::Update,
            data_after: Some(
                json!({"title": "a, \"quoted\"\nline", "id": 7, "body": {"z": 1, "a": 2}}),
            ),
            data_before: None,
            changed_fields: Some(vec!["title".into()]),
            changed_from: Some(json!({"title": "old"})),
            captured_at: at(1_800_000_000),
            actor_ref: Some(json!({"type": "user", "id": "42"})),
        };
        let transaction = AuditTransaction {
            id: 3,
            txid: 900,
            occurred_at: at(1_799_999_999),
            actor_ref: Some(json!({"type": "user", "id": "42"})),
            request_id: Some("req-1".into()),
            correlation_id: Some("order-9".into()),
            remote_ip: Some("10.0.0.1".parse().unwrap()),
            source: None,
            meta: None,
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        };
        let action = AuditAction {
            id: 5,
            name: "post.published".into(),
            actor_ref: json!({"type": "user", "id": "42"}),
            status: crate::ActionStatus::Ok,
            verb: None,
            category: None,
            reason: Some("launch".into()),
            comment: None,
            correlation_id: None,
            request_id: None,
            job_id: None,
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            transaction_id: Some(3),
            inserted_at: at(1_800_000_001),
        };
        ExportRecord::new(change, Some(transaction), vec![action])
    }

    #[test]
    fn json_document_has_sorted_keys_and_iso_timestamps() {
        let doc = encode_export(&[record(), record()], ExportFormat::Json, at(0));
        assert!(doc.starts_with("{\"changes\":[{\"actions\":[{\"actor_ref\":{\"id\":\"42\",\"type\":\"user\"},\"category\":null,"), "{doc}");
        assert!(
            doc.ends_with(
                "],\"format_version\":1,\"generated_at\":\"1970-01-01T00:00:00.123456Z\"}\n"
            ),
            "{doc}"
        );
        assert!(
            doc.contains("\"data_after\":{\"body\":{\"a\":2,\"z\":1},\"id\":7,\"title\":"),
            "{doc}"
        );
        assert!(
            doc.contains("\"captured_at\":\"2027-01-15T08:00:00.123456Z\""),
            "{doc}"
        );
        let parsed: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(parsed["changes"].as_array().unwrap().len(), 2);
        assert_eq!(
            parsed["changes"][0]["transaction"]["correlation_id"],
            "order-9"
        );
        assert_eq!(parsed["changes"][0]["transaction"]["remote_ip"], "10.0.0.1");
        assert_eq!(parsed["changes"][0]["actions"][0]["reason"], "launch");
        assert_eq!(
            doc,
            encode_export(&[record(), record()], ExportFormat::Json, at(0)),
            "deterministic"
        );
        assert_eq!(
            encode_export(&[], ExportFormat::Json, at(0)),
            "{\"changes\":[],\"format_version\":1,\"generated_at\":\"1970-01-01T00:00:00.123456Z\"}\n"
        );
    }

    #[test]
    fn ndjson_is_one_canonical_object_per_line() {
        let out = encode_export(&[record(), record()], ExportFormat::Ndjson, at(0));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], canonical_json(&record().to_json()));
        assert!(out.ends_with('\n'));
        assert_eq!(encode_export(&[], ExportFormat::Ndjson, at(0)), "");
    }

    #[test]
    fn csv_reads_back_with_a_csv_parser() {
        let out = encode_export(&[record()], ExportFormat::Csv, at(0));
        assert!(out.contains("\r\n"), "RFC 4180 line ends");
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            CSV_HEADER
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(&row[0], "10");
        assert_eq!(&row[2], "2027-01-15T08:00:00.123456Z");
        assert_eq!(&row[5], "update");
        let data: Value = serde_json::from_str(&row[7]).unwrap();
        assert_eq!(data["title"], "a, \"quoted\"\nline");
        assert_eq!(&row[8], "", "NULL is an empty cell");
        assert_eq!(&row[9], "[\"title\"]");
        assert_eq!(&row[11], "{\"id\":\"42\",\"type\":\"user\"}");
        assert_eq!((&row[12], &row[13]), ("req-1", "order-9"));
        assert_eq!(&row[14], "4bf92f3577b34da6a3ce929d0e0e4736");
        let transaction: Value = serde_json::from_str(&row[15]).unwrap();
        assert_eq!(transaction["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let actions: Value = serde_json::from_str(&row[16]).unwrap();
        assert_eq!(actions[0]["name"], "post.published");
        assert_eq!(actions[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            encode_export(&[], ExportFormat::Csv, at(0)).lines().count(),
            1,
            "header only"
        );
    }
}
