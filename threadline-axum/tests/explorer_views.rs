//! What the explorer's pages show beyond the stored values, on a real router over a real
//! database: before-values derived from a row's previous version, the timeline's activity
//! chart, and truncates.
#![allow(clippy::unwrap_used)]

mod support;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use support::{app, seed};
use threadline_sqlx::TableCapture;
use threadline_test_support::TestDb;
use tower::ServiceExt;

async fn page(app: &Router, uri: &str) -> String {
    let req = Request::get(uri)
        .header("x-actor", "admin:alice")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

/// The diff rows of a page: `(field, before cell, after cell)` as raw HTML.
fn diff_rows(html: &str) -> Vec<(String, String, String)> {
    html.split("<th scope=\"row\">")
        .skip(1)
        .map(|row| {
            let field = row[..row.find("</th>").unwrap()].to_owned();
            let cell = |class: &str| {
                let start = row.find(&format!("<td class=\"{class}")).unwrap();
                let rest = &row[start..];
                rest[..rest.find("</td>").unwrap()].to_owned()
            };
            (field, cell("before"), cell("after"))
        })
        .collect()
}

#[tokio::test]
async fn before_values_are_derived_from_the_previous_version_and_marked() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    let published = s.transactions[2];
    let tx = page(&app, &format!("/admin/audit/transactions/{published}")).await;
    let rows = diff_rows(&tx);
    // posts stores changed_from: its before-value is stored, not derived.
    let (_, status_before, _) = rows.iter().find(|(f, _, _)| f == "status").unwrap();
    assert!(status_before.contains("draft") && !status_before.contains("derived"));
    // users does not: the name before the update comes from the insert's image, marked.
    let (_, name_before, name_after) = rows.iter().find(|(f, _, _)| f == "name").unwrap();
    assert!(
        name_before.starts_with("<td class=\"before derived\""),
        "{name_before}"
    );
    assert!(name_before.contains(">Ann<") && name_before.contains(">derived<"));
    assert!(
        name_before.contains("change #"),
        "the title names the source change"
    );
    assert!(name_after.contains("Ann B"));
    // The masked email stays masked on both sides.
    let (_, email_before, _) = rows.iter().find(|(f, _, _)| f == "email").unwrap();
    assert!(email_before.contains("class=\"masked\""), "{email_before}");
    assert!(!tx.contains("not captured"));
    assert!(tx.contains("class=\"legend\""));

    // A row whose earlier versions were never captured: "not captured", no legend.
    s.db.exec(
        "CREATE TABLE tags (id int PRIMARY KEY, label text); INSERT INTO tags VALUES (1, 'old');",
    )
    .await;
    s.db.audit("tags", &TableCapture::default()).await;
    s.db.exec("UPDATE tags SET label = 'new' WHERE id = 1")
        .await;
    let id =
        s.db.scalar("SELECT max(transaction_id) FROM audit_changes WHERE table_name = 'tags'")
            .await;
    let tx = page(&app, &format!("/admin/audit/transactions/{id}")).await;
    let rows = diff_rows(&tx);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1.contains("not captured") && !rows[0].1.contains("derived"));
    assert!(!tx.contains("class=\"legend\""));
    // Its next update derives from this one's image.
    s.db.exec("UPDATE tags SET label = 'newer' WHERE id = 1")
        .await;
    let id =
        s.db.scalar("SELECT max(transaction_id) FROM audit_changes WHERE table_name = 'tags'")
            .await;
    let rows = diff_rows(&page(&app, &format!("/admin/audit/transactions/{id}")).await);
    assert!(
        rows[0].1.contains(">new<") && rows[0].1.contains("derived"),
        "{:?}",
        rows[0]
    );
}

/// The bars' counts, in order.
fn bars(html: &str) -> Vec<i64> {
    html.split("data-count=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
        .collect()
}

#[tokio::test]
async fn the_timeline_charts_the_filters_changes_per_day_or_hour() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    let all = s.db.scalar("SELECT count(*) FROM audit_changes").await;
    let timeline = page(&app, "/admin/audit").await;
    assert!(
        timeline.contains("<svg class=\"chart\" role=\"img\" aria-labelledby=\"activity-title\"")
    );
    assert!(timeline.contains("<title id=\"activity-title\">Changes per day (UTC)"));
    assert!(timeline.contains(&format!(": {all} in all")), "{timeline}");
    let counts = bars(&timeline);
    assert_eq!(counts.len(), 31, "30 days back and today");
    assert_eq!(counts.iter().sum::<i64>(), all);
    assert_eq!(*counts.last().unwrap(), all, "everything was written today");
    assert!(
        timeline.contains("The chart as a table"),
        "the table fallback"
    );
    assert!(!timeline.contains("<script"));

    // The chart follows the filter.
    let posts =
        s.db.scalar("SELECT count(*) FROM audit_changes WHERE table_name = 'posts'")
            .await;
    let filtered = page(&app, "/admin/audit?table=posts&op=update").await;
    let updates = s
        .db
        .scalar("SELECT count(*) FROM audit_changes WHERE table_name = 'posts' AND op = 'update'")
        .await;
    assert!(updates < posts);
    assert_eq!(bars(&filtered).iter().sum::<i64>(), updates);

    // A short range counts per hour; each bar links to the timeline narrowed to it.
    let from = (chrono::Utc::now() - chrono::Duration::hours(5)).format("%Y-%m-%dT%H:%M:%SZ");
    let hourly = page(&app, &format!("/admin/audit?from={from}&actor=user:bob")).await;
    assert!(hourly.contains("Changes per hour (UTC)"), "{hourly}");
    let bob = s
        .db
        .scalar(
            "SELECT count(*) FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id \
             WHERE t.actor_ref->>'id' = 'bob'",
        )
        .await;
    let counts = bars(&hourly);
    assert!((5..=6).contains(&counts.len()), "{counts:?}");
    assert_eq!(counts.iter().sum::<i64>(), bob);
    assert!(
        hourly.contains("href=\"/admin/audit?actor=user%3Abob&amp;from="),
        "bars keep the filter"
    );
}

#[tokio::test]
async fn a_truncate_shows_on_the_timeline_and_its_transaction() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await;
    db.audit("items", &TableCapture::default()).await;
    db.exec("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 3) g")
        .await;
    db.exec("TRUNCATE items").await;
    let tx = db
        .scalar("SELECT transaction_id FROM audit_changes WHERE op = 'truncate'")
        .await;
    let app = app(&db, |o| o);

    let timeline = page(&app, "/admin/audit").await;
    let row = &timeline[timeline.find("<tr data-change").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(">truncate<"), "newest first: {row}");
    assert!(row.contains("all rows"), "a truncate has no key: {row}");
    assert!(row.contains("table truncated (3 rows removed)"), "{row}");
    assert!(!row.contains("/row?"), "no row link for an empty key");

    let filtered = page(&app, "/admin/audit?op=truncate").await;
    assert_eq!(filtered.matches("<tr data-change").count(), 1);

    let page = page(&app, &format!("/admin/audit/transactions/{tx}")).await;
    assert!(page.contains("Changes (1)"));
    assert!(page.contains("table truncated (3 rows removed)"), "{page}");
    assert!(!page.contains("No field values recorded"));
    assert!(!page.contains("not captured"));
}

#[tokio::test]
async fn a_chart_that_takes_too_long_is_left_out_and_the_timeline_still_shows() {
    let s = seed().await;
    // Another session holds a lock the chart's count must wait for, then lets go after a
    // second: the chart gives up at its 200 ms limit, the rows wait and show.
    let mut locker = s.db.connect().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE audit_changes IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
    });
    let slow = app(&s.db, |o| {
        o.chart_timeout(std::time::Duration::from_millis(200))
    });
    let timeline = page(&slow, "/admin/audit").await;
    release.await.unwrap();
    assert!(
        timeline.contains("No activity chart: counting this filter"),
        "{timeline}"
    );
    assert!(!timeline.contains("<svg"));
    assert!(timeline.contains("<tr data-change"), "the rows still show");

    // Duration::ZERO turns the chart off.
    let off = app(&s.db, |o| o.chart_timeout(std::time::Duration::ZERO));
    let timeline = page(&off, "/admin/audit").await;
    assert!(!timeline.contains("activity") && !timeline.contains("<svg"));
    assert!(timeline.contains("<tr data-change"));
}
