//! The audit explorer on a real axum router over a real database, driven with `oneshot`.
#![allow(clippy::unwrap_used)]

mod support;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use support::{SCRIPT_TITLE, Seeded, app, seed};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn get_as(app: &Router, actor: Option<&str>, uri: &str) -> Reply {
    let mut req = Request::get(uri);
    if let Some(actor) = actor {
        req = req.header("x-actor", actor);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn admin(app: &Router, uri: &str) -> Reply {
    get_as(app, Some("admin:alice"), uri).await
}

/// A page that must answer 200; returns its body.
async fn page(app: &Router, uri: &str) -> String {
    let reply = admin(app, uri).await;
    assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
    reply.body
}

fn every_route(s: &Seeded) -> Vec<String> {
    let tx = s.transactions[0];
    vec![
        "/admin/audit".into(),
        format!("/admin/audit/transactions/{tx}"),
        "/admin/audit/row?table=posts&pk=1".into(),
        "/admin/audit/actor?actor=user:bob".into(),
        "/admin/audit/api/timeline".into(),
        format!("/admin/audit/api/transactions/{tx}"),
        "/admin/audit/api/row?table=posts&pk=1".into(),
        "/admin/audit/api/actor?actor=user:bob".into(),
        "/admin/audit/export?format=csv".into(),
        "/admin/audit/assets/explorer.css".into(),
        "/admin/audit/no/such/page".into(),
    ]
}

#[tokio::test]
async fn authorization_denies_everyone_but_admins_on_every_route() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    for uri in every_route(&s) {
        for actor in [
            None,
            Some("user:bob"),
            Some("anonymous"),
            Some("service_account:admin"),
        ] {
            let reply = get_as(&app, actor, &uri).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{uri} as {actor:?}");
            assert!(reply.body.contains("access denied"), "{}", reply.body);
            assert!(!reply.body.contains("Hello"), "a denied page leaks data");
            assert!(reply.headers.contains_key(header::CONTENT_SECURITY_POLICY));
        }
        let reply = admin(&app, &uri).await;
        let expected = if uri.ends_with("/no/such/page") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(reply.status, expected, "{uri} as admin: {}", reply.body);
    }
}

#[tokio::test]
async fn authorize_closures_see_the_request_and_async_checks_work() {
    let s = seed().await;
    let by_header = |parts: &http::request::Parts| parts.headers.contains_key("x-staff");
    let app = Router::new().nest(
        "/audit",
        threadline_axum::explorer::router(
            threadline_sqlx::Threadline::new(s.db.pool.clone()),
            threadline_axum::explorer::ExplorerOptions::new(by_header),
        ),
    );
    let send = |staff: bool| {
        let mut req = Request::get("/audit");
        if staff {
            req = req.header("x-staff", "1");
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    assert_eq!(send(false).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(send(true).await.unwrap().status(), StatusCode::OK);

    let check = threadline_axum::explorer::async_authorize(|parts: &http::request::Parts| {
        let token = parts.headers.get("authorization").cloned();
        async move { token.is_some_and(|t| t == "Bearer ok") }
    });
    let app = Router::new().nest(
        "/audit",
        threadline_axum::explorer::router(
            threadline_sqlx::Threadline::new(s.db.pool.clone()),
            threadline_axum::explorer::ExplorerOptions::new(check),
        ),
    );
    for (token, status) in [
        ("Bearer ok", StatusCode::OK),
        ("Bearer no", StatusCode::FORBIDDEN),
    ] {
        let req = Request::get("/audit").header("authorization", token);
        let res = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{token}");
    }
}

#[tokio::test]
async fn every_page_renders_the_seeded_trail() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    let [created, _script, published, deleted, _markup] = s.transactions[..] else {
        panic!("five transactions")
    };

    let timeline = page(&app, "/admin/audit").await;
    for text in [
        "Timeline",
        "admin:alice",
        "user:bob",
        "public.posts",
        "public.users",
        "id=1",
        ">insert<",
        ">update<",
        ">delete<",
        "status",
        "new row",
        "row deleted",
    ] {
        assert!(timeline.contains(text), "timeline lacks {text:?}");
    }
    // Links carry the mount point.
    assert!(timeline.contains(&format!("href=\"/admin/audit/transactions/{deleted}\"")));
    assert!(timeline.contains("href=\"/admin/audit/row?table=public.posts&amp;pk=1\""));
    assert!(timeline.contains("href=\"/admin/audit/actor?actor=user%3Abob\""));
    assert!(timeline.contains("href=\"/admin/audit/assets/explorer.css\""));

    let filtered = page(&app, "/admin/audit?table=users&op=update").await;
    assert!(filtered.contains("public.users") && !filtered.contains("public.posts<"));
    assert!(
        filtered.contains("email, name"),
        "changed fields of the users update"
    );
    assert!(filtered.contains("<option value=\"update\" selected>"));

    let tx = page(&app, &format!("/admin/audit/transactions/{created}")).await;
    for text in [
        format!("Transaction #{created}").as_str(),
        "admin:alice",
        "req-1",
        "order-7",
        "10.0.0.5",
        "post.created",
        "seeded by the test",
        "Changes (2)",
        "Hello",
    ] {
        assert!(tx.contains(text), "transaction page lacks {text:?}");
    }
    assert!(
        tx.contains("class=\"masked\""),
        "masked email shown as masked"
    );
    assert!(!tx.contains("ann@example.com"));

    let tx = page(&app, &format!("/admin/audit/transactions/{published}")).await;
    // posts stores changed_from: both sides; users does not: its old name comes from the
    // row's previous version, marked derived (explorer_views tests this closely).
    assert!(tx.contains("draft") && tx.contains("published"));
    assert!(tx.contains(">derived<") && tx.contains("Ann B"));

    let row = page(&app, "/admin/audit/row?table=posts&pk=1").await;
    assert!(row.contains("Row public.posts id=1"));
    assert!(row.contains("Versions, newest first (4)"));
    let order: Vec<usize> = [">delete<", ">update<", ">insert<"]
        .iter()
        .map(|op| row.find(op).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "newest first");
    // Consecutive versions: the status update shows its old value.
    assert!(row.contains("draft"));

    let before_delete = s_time(&s, deleted).await - chrono::Duration::milliseconds(1);
    let at = before_delete.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let row = page(&app, &format!("/admin/audit/row?table=posts&pk=1&at={at}")).await;
    assert!(row.contains("the row looked like this"), "{row}");
    assert!(row.contains("published"));
    let row = page(&app, "/admin/audit/row?table=posts&pk=1&at=2000-01-01").await;
    assert!(row.contains("No captured change of this row is at or before"));
    let row = page(&app, "/admin/audit/row?table=posts&pk=1&at=2999-01-01").await;
    assert!(row.contains("had been deleted"));

    let actor = page(&app, "/admin/audit/actor?actor=user:bob").await;
    assert!(actor.contains("Actor user:bob"));
    assert!(actor.contains("req-2") && actor.contains("req-3") && !actor.contains("req-1"));

    let json: Value =
        serde_json::from_str(&page(&app, "/admin/audit/api/timeline?table=posts").await).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 4);
    let json: Value = serde_json::from_str(
        &page(&app, &format!("/admin/audit/api/transactions/{published}")).await,
    )
    .unwrap();
    assert_eq!(json["changes"][0]["diff"][0]["name"], "status");
}

#[tokio::test]
async fn export_streams_the_timeline_filter_as_csv_or_ndjson() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    // The timeline links to the export of its current filter (cursor and size left out).
    let timeline = page(&app, "/admin/audit?table=posts&op=update&size=1").await;
    assert!(
        timeline.contains(
            "href=\"/admin/audit/export?table=posts&amp;op=update&amp;format=csv\" download"
        ),
        "{timeline}"
    );
    assert!(timeline.contains("/admin/audit/export?table=posts&amp;op=update&amp;format=ndjson"));

    let timeline: Value =
        serde_json::from_str(&page(&app, "/admin/audit/api/timeline?table=posts").await).unwrap();
    let newest_first: Vec<i64> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();

    let reply = admin(&app, "/admin/audit/export?table=posts&format=ndjson").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/x-ndjson");
    let disposition = reply.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"threadline-export-")
            && disposition.ends_with(".ndjson\""),
        "{disposition}"
    );
    let lines: Vec<Value> = reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let exported: Vec<i64> = lines.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(
        exported, newest_first,
        "every change of the filter, newest first"
    );
    assert!(lines.iter().all(|c| c["table_name"] == "posts"));
    assert!(
        lines
            .iter()
            .any(|c| c["transaction"]["request_id"] == "req-1"),
        "each change carries its transaction"
    );

    // CSV by default: the header, then one record per change.
    let reply = admin(&app, "/admin/audit/export?table=posts").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let mut csv = reply.body.lines();
    assert!(csv.next().unwrap().starts_with("id,"));
    assert_eq!(csv.filter(|l| !l.is_empty()).count(), newest_first.len());

    // Nothing matches: still a valid (empty) export.
    let reply = admin(&app, "/admin/audit/export?table=nosuch&format=ndjson").await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, ""));

    // Bad parameters get the 400 page that names them, never a half-written download.
    for (uri, names) in [
        ("/admin/audit/export?format=xml", "format"),
        ("/admin/audit/export?cursor=abc", "cursor"),
        ("/admin/audit/export?from=yesterday", "from"),
    ] {
        let reply = admin(&app, uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(reply.body.contains(names), "{uri}: {}", reply.body);
        assert!(!reply.headers.contains_key(header::CONTENT_DISPOSITION));
    }
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

async fn s_time(s: &Seeded, tx: i64) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT min(captured_at) FROM audit_changes WHERE transaction_id = $1")
        .bind(tx)
        .fetch_one(&s.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn audit_values_are_escaped_and_pages_carry_a_strict_csp() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    let script = "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;";
    let mallory = "&lt;b&gt;mallory&lt;/b&gt;";
    for (uri, escaped) in [
        ("/admin/audit".to_owned(), script),
        (
            format!("/admin/audit/transactions/{}", s.transactions[1]),
            script,
        ),
        (
            format!("/admin/audit/transactions/{}", s.transactions[4]),
            script,
        ),
        ("/admin/audit/row?table=posts&pk=1".to_owned(), script),
        (
            format!(
                "/admin/audit/row?table=notes&pk={}",
                urlencode(SCRIPT_TITLE)
            ),
            script,
        ),
        (
            format!(
                "/admin/audit/actor?actor=user:{}",
                urlencode(support::MARKUP_ACTOR)
            ),
            mallory,
        ),
    ] {
        let reply = admin(&app, &uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        assert!(
            !reply.body.contains(SCRIPT_TITLE),
            "{uri} renders raw markup"
        );
        assert!(
            !reply.body.contains("<script"),
            "{uri} has a script element"
        );
        assert!(
            !reply.body.contains("<b>"),
            "{uri} renders the actor's markup"
        );
        assert!(reply.body.contains(escaped), "{uri} lacks {escaped}");
        let csp = reply.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(reply.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    }
    let timeline = admin(&app, "/admin/audit").await.body;
    assert!(timeline.contains(&format!("user:{mallory}")));
    // Parameters echoed back into the form are escaped too.
    let reply = admin(&app, "/admin/audit?request_id=%22%3E%3Cscript%3Ex").await;
    assert!(!reply.body.contains("\"><script>x"), "{}", reply.body);
    assert!(reply.body.contains("&quot;&gt;&lt;script&gt;x"));
}

#[tokio::test]
async fn bad_parameters_get_a_400_page_that_names_them() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    let other_filter_cursor = {
        let first: Value =
            serde_json::from_str(&page(&app, "/admin/audit/api/timeline?size=1").await).unwrap();
        first["next"].as_str().unwrap().to_owned()
    };
    let cases = [
        ("/admin/audit?op=merge", "`op`"),
        ("/admin/audit?from=yesterday", "`from`"),
        ("/admin/audit?from=2026-02-01&to=2026-01-01", "`from`"),
        ("/admin/audit?tabel=posts", "`tabel`"),
        ("/admin/audit?op=insert&op=update", "`op`"),
        ("/admin/audit?size=0", "`size`"),
        ("/admin/audit?size=5000", "`size`"),
        ("/admin/audit?cursor=garbage", "`cursor`"),
        ("/admin/audit?actor=wizard:1", "`actor`"),
        ("/admin/audit?table=a.b.c", "`table`"),
        (
            &format!("/admin/audit?table=posts&cursor={other_filter_cursor}"),
            "different filter",
        ),
        ("/admin/audit/transactions/abc", "`id`"),
        ("/admin/audit/transactions/-1", "`id`"),
        ("/admin/audit/transactions/1?x=1", "`x`"),
        ("/admin/audit/row?table=posts", "`pk`"),
        ("/admin/audit/row?pk=1", "`table`"),
        ("/admin/audit/row?table=posts&pk=%7Bbad", "`pk`"),
        ("/admin/audit/row?table=posts&pk=1&at=soon", "`at`"),
        ("/admin/audit/actor", "`actor`"),
        ("/admin/audit/actor?actor=user:", "`actor`"),
    ];
    for (uri, names) in cases {
        let reply = admin(&app, uri).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            reply.body
        );
        assert!(reply.body.contains(names), "{uri}: {}", reply.body);
        assert!(
            reply.body.contains("role=\"alert\""),
            "{uri}: an HTML error page"
        );
    }
    // JSON endpoints answer 400 with a JSON error.
    let reply = admin(&app, "/admin/audit/api/timeline?op=nope").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let json: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(json["status"], 400);
    assert!(json["error"].as_str().unwrap().contains("`op`"));
    // Unknown ids and tables are 404s, not 500s.
    assert_eq!(
        admin(&app, "/admin/audit/transactions/999999").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin(&app, "/admin/audit/row?table=nope&pk=1").await.status,
        StatusCode::NOT_FOUND
    );
}

/// Follows `rel` links from `start`; returns the change ids of every page visited, in order.
async fn walk(app: &Router, start: &str, rel: &str) -> (Vec<Vec<i64>>, String) {
    let mut pages = Vec::new();
    let mut uri = start.to_owned();
    loop {
        let body = page(app, &uri).await;
        let ids = body
            .split("data-change=\"")
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].parse::<i64>().unwrap())
            .collect::<Vec<_>>();
        pages.push(ids);
        let marker = format!("rel=\"{rel}\" href=\"");
        match body.find(&marker) {
            Some(at) => {
                let rest = &body[at + marker.len()..];
                uri = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
            }
            None => return (pages, uri),
        }
        assert!(pages.len() < 100, "runaway pagination");
    }
}

#[tokio::test]
async fn pagination_neither_skips_nor_repeats_rows() {
    let s = seed().await;
    // 23 rows in one statement: many share a capture timestamp.
    let ctx =
        threadline_sqlx::AuditContext::for_actor(threadline_sqlx::ActorRef::user("bulk").unwrap());
    let mut tx = s.db.pool.begin().await.unwrap();
    threadline_sqlx::TransactionExt::with_context(&mut *tx, &ctx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO posts (id, title) SELECT g, 'Bulk ' || g FROM generate_series(100, 122) g",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let app = app(&s.db, |o| o.page_size(4));
    let all: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM audit_changes WHERE table_name = 'posts' ORDER BY captured_at DESC, id DESC",
    )
    .fetch_all(&s.db.pool)
    .await
    .unwrap();
    assert_eq!(all.len(), 27);

    let (older, last) = walk(&app, "/admin/audit?table=posts", "next").await;
    assert_eq!(older.len(), 7, "27 rows in pages of 4");
    assert!(older.iter().all(|p| !p.is_empty() && p.len() <= 4));
    assert_eq!(
        older.concat(),
        all,
        "older links: every row once, newest first"
    );

    let (newer, _) = walk(&app, &last, "prev").await;
    let mut back: Vec<Vec<i64>> = newer;
    back.reverse();
    assert_eq!(
        back.concat(),
        all,
        "newer links walk back over the same rows"
    );
    assert_eq!(back, older, "and the same pages");
}

#[tokio::test]
async fn base_path_option_and_nesting_build_the_links() {
    let s = seed().await;
    let app = app(&s.db, |o| {
        o.base_path("/proxy/audit/").title("Shop <audit>")
    });
    let body = page(&app, "/admin/audit").await;
    assert!(body.contains("href=\"/proxy/audit/assets/explorer.css\""));
    assert!(body.contains("Shop &lt;audit&gt;"));
    // At the root of a router, links start at `/`.
    let root = Router::new().merge(threadline_axum::explorer::router(
        threadline_sqlx::Threadline::new(s.db.pool.clone()),
        threadline_axum::explorer::ExplorerOptions::new(|_: &http::request::Parts| true),
    ));
    let body = page(&root, "/").await;
    assert!(body.contains("href=\"/assets/explorer.css\""));
    assert!(body.contains("href=\"/transactions/"));
}

#[tokio::test]
async fn database_errors_answer_500_without_the_database_message() {
    let s = seed().await;
    // Audit tables looked up in a schema that has none: every query fails in PostgreSQL.
    let threadline = threadline_sqlx::Threadline::new(s.db.pool.clone())
        .with_schema(threadline_sqlx::Ident::new("no_audit_here").unwrap());
    let app = Router::new().nest(
        "/audit",
        threadline_axum::explorer::router(
            threadline,
            threadline_axum::explorer::ExplorerOptions::new(|_: &http::request::Parts| true),
        ),
    );
    for uri in ["/audit", "/audit/api/timeline", "/audit/transactions/1"] {
        let reply = get_as(&app, None, uri).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert!(reply.body.contains("server log"), "{uri}: {}", reply.body);
        assert!(
            !reply.body.contains("no_audit_here"),
            "{uri} leaks the SQL error"
        );
    }
}

/// `/admin/audit/` (a trailing slash, as a browser or a hand-typed link sends it) is the
/// timeline, with the explorer's authorization and security headers, when the explorer is
/// mounted with `nest_service` as the guide says; with `nest`, axum never routes it to the
/// explorer, and the application's own (empty, header-less) 404 answers.
#[tokio::test]
async fn a_trailing_slash_on_the_mount_point_serves_the_timeline_with_the_explorer_headers() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    for uri in ["/admin/audit/", "/admin/audit/?table=posts"] {
        let reply = admin(&app, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        assert!(
            reply.body.contains("<h1>Timeline</h1>"),
            "{uri}: {}",
            reply.body
        );
        assert!(
            reply.body.contains("data-change="),
            "{uri}: no changes listed"
        );
        assert!(
            reply
                .body
                .contains("href=\"/admin/audit/assets/explorer.css\""),
            "{uri}: links keep the canonical prefix"
        );
        assert_eq!(
            reply.headers[header::CONTENT_SECURITY_POLICY],
            threadline_csp(),
            "{uri}"
        );
        assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store", "{uri}");

        let denied = get_as(&app, Some("user:bob"), uri).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{uri}");
        assert!(denied.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }

    // What the issue saw: with `nest`, the slash falls through to the application's 404.
    let nested = Router::new()
        .nest(
            "/admin/audit",
            threadline_axum::explorer::router(
                threadline_sqlx::Threadline::new(s.db.pool.clone()),
                threadline_axum::explorer::ExplorerOptions::new(|_: &http::request::Parts| true),
            ),
        )
        .layer(threadline_axum::ThreadlineLayer::new(
            support::actor_from_request,
        ));
    let reply = admin(&nested, "/admin/audit/").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(!reply.headers.contains_key(header::CONTENT_SECURITY_POLICY));
}

/// The Content-Security-Policy every explorer response carries.
fn threadline_csp() -> &'static str {
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
}

/// Capture is to the microsecond, and so are the explorer's as-of links: "state after this
/// change" on a version links to the row as of that change's exact capture time, which shows
/// that version, while the same time cut to milliseconds shows the one before it.
#[tokio::test]
async fn as_of_links_carry_the_full_capture_time_and_show_the_state_after_the_change() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    // Post 1's versions, oldest first: insert, title update, status update, delete. Pin the
    // first two to times 647 µs apart, the update at .800547 as in the issue.
    let times = [
        "2026-11-26 12:00:23.799900+00",
        "2026-11-26 12:00:23.800547+00",
        "2026-11-26 12:00:24+00",
        "2026-11-26 12:00:25+00",
    ];
    sqlx::query(
        "UPDATE audit_changes c SET captured_at = t.at::timestamptz
         FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM audit_changes
               WHERE table_name = 'posts' AND table_pk = '{\"id\": 1}') AS v,
              unnest($1::text[]) WITH ORDINALITY AS t(at, n)
         WHERE c.id = v.id AND v.n = t.n",
    )
    .bind(times)
    .execute(&s.db.pool)
    .await
    .unwrap();

    let row = page(&app, "/admin/audit/row?table=posts&pk=1").await;
    // Shown to the microsecond, and linked with the full time.
    assert!(row.contains("2026-11-26 12:00:23.800547 UTC"), "{row}");
    let link =
        "/admin/audit/row?table=public.posts&amp;pk=1&amp;at=2026-11-26T12%3A00%3A23.800547Z";
    assert!(row.contains(link), "no full-precision as-of link in {row}");
    assert_eq!(row.matches("state after this change").count(), 4);

    // Following it shows the title update, not the insert before it.
    let after = page(&app, &link.replace("&amp;", "&")).await;
    let result = as_of_result(&after);
    assert!(
        result.contains("its state after the update captured at"),
        "{result}"
    );
    assert!(
        result.contains("2026-11-26 12:00:23.800547 UTC"),
        "{result}"
    );
    assert!(
        result.contains("&lt;script&gt;"),
        "the updated title: {result}"
    );
    // The form keeps the full time for another look.
    assert!(
        after.contains("value=\"2026-11-26T12:00:23.800547Z\""),
        "{after}"
    );

    // The millisecond the old explorer offered is before the update: the insert's state.
    let milli = page(
        &app,
        "/admin/audit/row?table=posts&pk=1&at=2026-11-26T12:00:23.800Z",
    )
    .await;
    let result = as_of_result(&milli);
    assert!(result.contains("its state after the insert"), "{result}");
    assert!(result.contains("Hello"), "the first title: {result}");
    assert!(!result.contains("&lt;script&gt;"), "{result}");

    // Transaction pages link each change's state after it too.
    let tx = page(
        &app,
        &format!("/admin/audit/transactions/{}", s.transactions[1]),
    )
    .await;
    assert!(tx.contains(link), "{tx}");
}

/// The "as of" answer of a row page (without the version list below it).
fn as_of_result(page: &str) -> &str {
    let start = page
        .find("<div class=\"as-of-result\">")
        .expect("no as-of result");
    let end = page[start..].find("</section>").unwrap() + start;
    &page[start..end]
}

#[tokio::test]
async fn unknown_parameters_get_a_400_that_lists_what_the_page_takes() {
    let s = seed().await;
    let app = app(&s.db, |o| o);
    for (uri, message) in [
        (
            "/admin/audit?sort=asc",
            "invalid parameter `sort`: unknown parameter; this page takes table, actor, from, to, op, correlation_id, request_id, trace_id, cursor, size",
        ),
        (
            "/admin/audit/actor?actor=user:bob&page=2",
            "invalid parameter `page`: unknown parameter; this page takes actor, cursor, size",
        ),
        (
            "/admin/audit/export?format=csv&cursor=x",
            "invalid parameter `cursor`: unknown parameter; this page takes table, actor, from, to, op, correlation_id, request_id, trace_id, format",
        ),
        (
            "/admin/audit/transactions/1?x=1",
            "invalid parameter `x`: unknown parameter; this page takes no parameters",
        ),
    ] {
        let reply = admin(&app, uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            reply
                .body
                .contains(&format!("<p class=\"error\" role=\"alert\">{message}</p>")),
            "{uri}: {}",
            reply.body
        );
    }
    let reply = admin(&app, "/admin/audit/api/row?table=posts&pk=1&when=now").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let json: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "error": "invalid parameter `when`: unknown parameter; this page takes table, pk, at",
            "status": 400,
        })
    );
}
