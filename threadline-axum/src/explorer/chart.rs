//! The timeline's activity chart: changes per hour or day for the current filter, as an
//! inline SVG bar chart (no script), with a title and a table fallback for screen readers.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use threadline_sqlx::{ActivityBucket, ActivityWindow};

use super::Explorer;
use super::error::ExplorerError;
use super::html::View;
use super::params::{self, Params, TimelineQuery};

/// One chart: its window and every bucket's count.
pub(super) struct Activity {
    window: ActivityWindow,
    counts: Vec<(DateTime<Utc>, i64)>,
}

pub(super) async fn load_activity(
    state: &Explorer,
    query: &TimelineQuery,
) -> Result<Activity, ExplorerError> {
    let filter = params::filter(query.filter())?;
    let window = ActivityWindow::for_filter(&filter, Utc::now());
    let counts = state.threadline.activity(&filter, &window).await?;
    Ok(Activity { window, counts })
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
