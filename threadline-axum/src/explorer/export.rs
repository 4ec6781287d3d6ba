//! `/export`: the timeline's current filter streamed as a CSV or NDJSON download.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Extension;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum_core::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use http::{StatusCode, header};
use threadline_core::{ExportFormat, ExportRecord, ExportWriter};

use super::State as AppState;
use super::error::ExplorerError;
use super::html::BasePath;
use super::params::{self, ExportQuery, FilterFields, Params, TimelineQuery};

/// One format offered: its `format` value (also the file extension), link label, encoding
/// and content type.
pub(super) struct Format {
    pub(super) value: &'static str,
    pub(super) label: &'static str,
    encoding: ExportFormat,
    content_type: &'static str,
}

/// The formats offered; the first is the default.
pub(super) const FORMATS: [Format; 2] = [
    Format {
        value: "csv",
        label: "CSV",
        encoding: ExportFormat::Csv,
        content_type: "text/csv; charset=utf-8",
    },
    Format {
        value: "ndjson",
        label: "NDJSON",
        encoding: ExportFormat::Ndjson,
        content_type: "application/x-ndjson",
    },
];

/// Streams every change that matches the filter, newest first, with no row limit; memory
/// stays at one page of records. Bad parameters get the 400 page, and a database that fails
/// before the first record the 500 page; a failure later cuts the download short.
pub(super) async fn export(
    State(state): State<AppState>,
    Extension(BasePath(base)): Extension<BasePath>,
    RawQuery(raw): RawQuery,
) -> Response {
    let view = state.view(&base);
    let started = async {
        let query = Params::<ExportQuery>::parse(raw.as_deref())?.query;
        let format = match query.format.as_deref() {
            None => &FORMATS[0],
            Some(value) => FORMATS.iter().find(|f| f.value == value).ok_or_else(|| {
                ExplorerError::param(
                    "format",
                    format!("{value:?} is not a format; use csv or ndjson"),
                )
            })?,
        };
        let filter = params::filter(query.filter())?;
        let mut records = state.threadline.export_stream(&filter).boxed();
        // The first page is read before answering, so that a database error is a proper page.
        let first = records.next().await.transpose()?;
        Ok::<_, ExplorerError>((format, first, records))
    };
    let (format, first, records) = match started.await {
        Ok(started) => started,
        Err(e) => return view.error(&e),
    };
    let filename = format!(
        "threadline-export-{}.{}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.value
    );
    let records = futures_util::stream::iter(first.map(Ok))
        .chain(records)
        .boxed();
    match encode(records, format.encoding) {
        Ok(body) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, format.content_type.to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ),
            ],
            Body::from_stream(body),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "threadline explorer: cannot start the export");
            let body = maud::html! { p.error role="alert" { "Cannot start the export." } };
            view.page(StatusCode::INTERNAL_SERVER_ERROR, "Export", body)
        }
    }
}

/// Where the writer puts its bytes; the body stream takes them after every record.
#[derive(Clone, Default)]
struct Chunks(Arc<Mutex<Vec<u8>>>);

impl Chunks {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The encoded body: the header (CSV), then the bytes of each record as it arrives. An error
/// ends the stream with an `io::Error`, which aborts the response.
fn encode(
    records: BoxStream<'static, Result<ExportRecord, threadline_sqlx::Error>>,
    format: ExportFormat,
) -> io::Result<impl Stream<Item = io::Result<Vec<u8>>> + Send + 'static> {
    let chunks = Chunks::default();
    let writer = ExportWriter::new(chunks.clone(), format, Utc::now())?;
    Ok(futures_util::stream::unfold(
        Some((writer, records, chunks)),
        |state| async move {
            let (mut writer, mut records, chunks) = state?;
            match records.next().await {
                Some(Ok(record)) => match writer.write(&record) {
                    Ok(()) => Some((Ok(chunks.take()), Some((writer, records, chunks)))),
                    Err(e) => Some((Err(e), None)),
                },
                Some(Err(e)) => {
                    tracing::error!(error = %e, "threadline explorer: export cut short");
                    Some((Err(io::Error::other(e)), None))
                }
                None => match writer.finish() {
                    Ok(_) => Some((Ok(chunks.take()), None)),
                    Err(e) => Some((Err(e), None)),
                },
            }
        },
    ))
}

/// The export link for the timeline's current filter.
pub(super) fn link_params<'a>(
    params: &'a Params<TimelineQuery>,
    format: &'a Format,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    params
        .pairs()
        .filter(|(n, _)| FilterFields::NAMES.contains(n))
        .chain([("format", format.value)])
}
