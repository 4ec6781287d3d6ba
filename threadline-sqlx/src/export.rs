//! Export (SPEC §7): bounded CSV / JSON / NDJSON exports and an unbounded stream, over the
//! same [`TimelineFilter`] and keyset pages as [`Threadline::timeline`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use sqlx::PgConnection;
use threadline_core::query::{self, Page, PagedQuery, TimelineFilter};
use threadline_core::{AuditAction, AuditTransaction, ExportFormat, ExportRecord, encode_export};

use crate::action::transaction_actions;
use crate::error::{Error, Result};
use crate::sql;
use crate::threadline::{Threadline, transaction_from_row};

/// Default `max_rows` of a bounded export.
pub const DEFAULT_EXPORT_MAX_ROWS: u64 = 10_000;

/// Largest `max_rows` of a bounded export (it holds the data in memory; stream beyond that).
pub const MAX_EXPORT_MAX_ROWS: u64 = 1_000_000;

/// Changes read per page by exports and [`Threadline::export_stream`].
pub const EXPORT_PAGE_SIZE: u32 = Page::MAX_SIZE;

/// Options of a bounded export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportOptions {
    /// At most this many changes (default 10,000; 1 to 1,000,000).
    pub max_rows: u64,
    /// `generated_at` of the JSON document (default: now).
    pub generated_at: Option<DateTime<Utc>>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            max_rows: DEFAULT_EXPORT_MAX_ROWS,
            generated_at: None,
        }
    }
}

impl ExportOptions {
    /// Sets `max_rows`.
    #[must_use]
    pub fn max_rows(mut self, max_rows: u64) -> Self {
        self.max_rows = max_rows;
        self
    }

    /// Sets the document's `generated_at` (for reproducible output).
    #[must_use]
    pub fn generated_at(mut self, at: DateTime<Utc>) -> Self {
        self.generated_at = Some(at);
        self
    }
}

/// A bounded export: the encoded data and whether `max_rows` cut it short.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Export {
    /// The CSV, JSON document or NDJSON text.
    pub data: String,
    /// Whether more changes matched than `max_rows`.
    pub truncated: bool,
    /// Changes in `data`.
    pub returned_count: u64,
    /// The limit that applied.
    pub max_rows: u64,
}

impl Threadline {
    /// The changes matching `filter` as CSV (RFC 4180, fixed header
    /// [`CSV_HEADER`](threadline_core::CSV_HEADER), JSON cells canonical JSON, NULL empty),
    /// newest first, at most `options.max_rows`.
    ///
    /// ```no_run
    /// # async fn run(threadline: threadline_sqlx::Threadline) -> threadline_sqlx::Result<()> {
    /// use threadline_sqlx::{ExportOptions, TimelineFilter};
    /// let export = threadline.export_csv(&TimelineFilter::new(), &ExportOptions::default()).await?;
    /// if export.truncated {
    ///     eprintln!("only the newest {} changes", export.max_rows);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn export_csv(
        &self,
        filter: &TimelineFilter,
        options: &ExportOptions,
    ) -> Result<Export> {
        self.export(filter, ExportFormat::Csv, options).await
    }

    /// The changes matching `filter` as one JSON document
    /// `{"changes":[...],"format_version":1,"generated_at":"..."}` (keys sorted), newest
    /// first, at most `options.max_rows`.
    pub async fn export_json(
        &self,
        filter: &TimelineFilter,
        options: &ExportOptions,
    ) -> Result<Export> {
        self.export(filter, ExportFormat::Json, options).await
    }

    /// The changes matching `filter` as NDJSON (one object per line, keys sorted), newest
    /// first, at most `options.max_rows`.
    pub async fn export_ndjson(
        &self,
        filter: &TimelineFilter,
        options: &ExportOptions,
    ) -> Result<Export> {
        self.export(filter, ExportFormat::Ndjson, options).await
    }

    /// A bounded export in any format (see [`export_csv`](Self::export_csv)).
    pub async fn export(
        &self,
        filter: &TimelineFilter,
        format: ExportFormat,
        options: &ExportOptions,
    ) -> Result<Export> {
        let max_rows = options.max_rows;
        if max_rows == 0 || max_rows > MAX_EXPORT_MAX_ROWS {
            return Err(Error::invalid(
                "max_rows",
                format!(
                    "{max_rows} is out of range; use 1 to {MAX_EXPORT_MAX_ROWS}, or export_stream for more"
                ),
            ));
        }
        let generated_at = options.generated_at.unwrap_or_else(Utc::now);
        let mut records = Vec::new();
        let mut page = Some(Page::first());
        let mut truncated = false;
        while let Some(current) = page.take() {
            let remaining = max_rows - records.len() as u64;
            if remaining == 0 {
                truncated = true;
                break;
            }
            let size =
                u32::try_from(remaining).map_or(EXPORT_PAGE_SIZE, |r| r.min(EXPORT_PAGE_SIZE));
            let (batch, next) = self.export_page(filter, current.with_size(size)).await?;
            records.extend(batch);
            page = next;
        }
        Ok(Export {
            data: encode_export(&records, format, generated_at),
            truncated,
            returned_count: records.len() as u64,
            max_rows,
        })
    }

    /// Every change matching `filter`, newest first, read in keyset pages of
    /// [`EXPORT_PAGE_SIZE`] with no cap: memory stays at one page however many changes
    /// stream. Pages are read one query at a time (no snapshot across pages): changes
    /// captured meanwhile are newer than the first page and not included; changes purged
    /// meanwhile may be missing.
    ///
    /// ```no_run
    /// # async fn run(threadline: threadline_sqlx::Threadline) -> threadline_sqlx::Result<()> {
    /// use futures_util::TryStreamExt;
    /// use threadline_sqlx::TimelineFilter;
    /// let mut changes = std::pin::pin!(threadline.export_stream(&TimelineFilter::new()));
    /// while let Some(record) = changes.try_next().await? {
    ///     println!("{} {}", record.change.id, record.change.op);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn export_stream(
        &self,
        filter: &TimelineFilter,
    ) -> impl Stream<Item = Result<ExportRecord>> + Send + 'static {
        let threadline = self.clone();
        let filter = filter.clone();
        stream::try_unfold(Some(Page::first()), move |page| {
            let threadline = threadline.clone();
            let filter = filter.clone();
            async move {
                let Some(page) = page else {
                    return Ok::<_, Error>(None);
                };
                let (records, next) = threadline
                    .export_page(&filter, page.with_size(EXPORT_PAGE_SIZE))
                    .await?;
                Ok(Some((stream::iter(records.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    /// One timeline page with each change's transaction and actions, and the next page.
    async fn export_page(
        &self,
        filter: &TimelineFilter,
        page: Page,
    ) -> Result<(Vec<ExportRecord>, Option<Page>)> {
        let PagedQuery { statement, plan } = query::timeline(self.schema(), filter, &page)?;
        let mut conn = self.conn().await?;
        let changes = self.fetch_changes(&mut conn, statement).await?;
        let changes = plan.finish(changes, |c| (c.captured_at, c.id));
        let mut ids: Vec<i64> = changes.items.iter().map(|c| c.transaction_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let transactions = self.transactions(&mut conn, &ids).await?;
        let mut actions: BTreeMap<i64, Vec<AuditAction>> = BTreeMap::new();
        if !ids.is_empty() {
            for a in transaction_actions(&mut conn, self, &ids).await? {
                if let Some(t) = a.transaction_id {
                    actions.entry(t).or_default().push(a);
                }
            }
        }
        conn.finish().await?;
        let records = changes
            .items
            .into_iter()
            .map(|c| {
                let t = c.transaction_id;
                ExportRecord::new(
                    c,
                    transactions.get(&t).cloned(),
                    actions.get(&t).cloned().unwrap_or_default(),
                )
            })
            .collect();
        Ok((records, changes.next.map(Page::at)))
    }

    /// The transactions `ids`, by id.
    async fn transactions(
        &self,
        conn: &mut PgConnection,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, AuditTransaction>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let statement = format!(
            "SELECT {} FROM {}.audit_transactions t WHERE t.id = ANY ($1)",
            query::TRANSACTION_COLUMNS,
            self.schema().quoted()
        );
        let rows = self
            .query(sql::generated(statement))
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
        rows.iter()
            .map(|row| transaction_from_row(row).map(|t| (t.id, t)))
            .collect::<sqlx::Result<_>>()
            .map_err(Error::from)
    }
}
