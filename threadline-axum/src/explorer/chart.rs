//! The timeline's activity chart: changes per hour or day for the current filter, as an
//! inline SVG bar chart (no script), with a title and a table fallback for screen readers.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use threadline_sqlx::{ActivityBucket, ActivityWindow};

use super::Explorer;
use super::error::ExplorerError;
use super::html::View;
use super::params::{self, Params, TimelineQuery};

/// One chart: its window and every bucket's count, or `None` when counting took longer than
/// the chart's time limit.
pub(super) struct Activity {
    window: ActivityWindow,
    counts: Option<Vec<(DateTime<Utc>, i64)>>,
}

/// PostgreSQL's `query_canceled`, which `statement_timeout` raises.
const QUERY_CANCELED: &str = "57014";

/// Counts the filter's changes per bucket, in a read-only transaction whose
/// `statement_timeout` is the chart's time limit, so that a filter matching millions of
/// changes delays the timeline by that much at most. `None` when the chart is off.
pub(super) async fn load_activity(
    state: &Explorer,
    query: &TimelineQuery,
) -> Result<Option<Activity>, ExplorerError> {
    let filter = params::filter(query.filter())?;
    let window = ActivityWindow::for_filter(&filter, Utc::now());
    let limit = state.options.chart_timeout;
    if limit.is_zero() {
        return Ok(None);
    }
    let counted = async {
        let mut tx = state.threadline.pool().begin().await?;
        let set = format!(
            "SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {}",
            limit.as_millis().max(1)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(set))
            .execute(&mut *tx)
            .await?;
        let counts = state
            .threadline
            .on(&mut tx)
            .activity(&filter, &window)
            .await?;
        tx.commit().await?;
        Ok::<_, threadline_sqlx::Error>(counts)
    }
    .await;
    match counted {
        Ok(counts) => Ok(Some(Activity {
            window,
            counts: Some(counts),
        })),
        Err(threadline_sqlx::Error::Database(sqlx::Error::Database(e)))
            if e.code().as_deref() == Some(QUERY_CANCELED) =>
        {
            tracing::info!(
                ?limit,
                "threadline explorer: activity chart skipped, counting took too long"
            );
            Ok(Some(Activity {
                window,
                counts: None,
            }))
        }
        Err(e) => Err(e.into()),
    }
}

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 120.0;
const AXIS: f64 = 18.0;
/// The room a tick label takes, in chart units.
const LABEL_WIDTH: f64 = 110.0;

fn label(bucket: ActivityBucket, at: DateTime<Utc>) -> String {
    match bucket {
        ActivityBucket::Day => at.format("%Y-%m-%d").to_string(),
        _ => at.format("%Y-%m-%d %H:00").to_string(),
    }
}

/// The chart; each bar links to the timeline narrowed to its bucket.
pub(super) fn activity_chart(
    view: &View<'_>,
    params: &Params<TimelineQuery>,
    activity: &Activity,
) -> Markup {
    let Activity { window, counts } = activity;
    let Some(counts) = counts else {
        return html! {
            section.activity aria-label="activity" {
                p.muted {
                    "No activity chart: counting this filter's changes took longer than the chart's time limit. "
                    "Narrow the time range or the filter to see it."
                }
            }
        };
    };
    let unit = window.bucket.as_str();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let slot = WIDTH / counts.len().max(1) as f64;
    let caption = format!(
        "Changes per {unit} (UTC), {} to {}: {total} in all",
        label(window.bucket, window.from),
        label(window.bucket, window.to),
    );
    let width = window.bucket.width();
    let bar_link = |at: DateTime<Utc>| {
        let from = params::time_param(at.max(window.from));
        let to =
            params::time_param((at + width - chrono::TimeDelta::microseconds(1)).min(window.to));
        view.link(
            "",
            params
                .without(&["from", "to", "cursor"])
                .chain([("from", from.as_str()), ("to", to.as_str())]),
        )
    };
    let every = (counts.len() / 6).max(1);
    html! {
        section.activity aria-label="activity" {
            h2 { (caption) }
            svg.chart role="img" aria-labelledby="activity-title" viewBox={ "0 0 " (WIDTH) " " (HEIGHT + AXIS) }
                preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg" {
                title id="activity-title" { (caption) }
                line.axis x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
                @for (i, (at, n)) in counts.iter().enumerate() {
                    @let h = if *n == 0 { 0.0 } else { (HEIGHT - 4.0) * (*n as f64) / (max as f64) + 2.0 };
                    @let x = i as f64 * slot;
                    a href=(bar_link(*at)) {
                        title { (label(window.bucket, *at)) ": " (n) " changes" }
                        rect.hit x=(x) y="0" width=(slot) height=(HEIGHT) {}
                        rect.bar x=(x + slot * 0.1) y=(HEIGHT - h) width=(slot * 0.8) height=(h) data-count=(n) {}
                    }
                    // Labels start at their bar, and none runs past the right edge.
                    @if i % every == 0 && x + LABEL_WIDTH <= WIDTH {
                        text.tick x=(x) y=(HEIGHT + AXIS - 4.0) { (label(window.bucket, *at)) }
                    }
                }
            }
            details.chart-table {
                summary { "The chart as a table" }
                table {
                    thead { tr { th { (unit) " (UTC)" } th { "Changes" } } }
                    tbody {
                        @for (at, n) in counts {
                            tr { td { (label(window.bucket, *at)) } td { (n) } }
                        }
                    }
                }
            }
        }
    }
}
