//! Every exploration query is index-backed: on a few hundred thousand changes, `EXPLAIN
//! (FORMAT JSON)` of the exact statements the library runs shows no sequential scan of
//! `audit_changes` (nor of `audit_transactions` for actor lookups), both as custom plans (with
//! the actual values) and as the generic plans a prepared statement switches to.

use chrono::{DateTime, Duration};
use serde_json::{Value, json};
use sqlx::Connection;
use threadline_core::query::{self, Page, SqlParam, Statement, TimelineFilter};
use threadline_core::{ActorRef, Ident, quote_literal};
use threadline_test_support::{Synthetic, TestDb, fill_synthetic};

const SPEC: Synthetic = Synthetic {
    changes: 300_000,
    transactions: 30_000,
    tables: 20,
    rows_per_table: 2_000,
    actors: 300,
    transaction_spacing: std::time::Duration::from_secs(1),
};

/// A parameter as a SQL literal, for `EXECUTE` (test-only: values here are our own).
fn literal(param: &SqlParam) -> String {
    match param {
        SqlParam::Text(s) => format!("{}::text", quote_literal(s)),
        SqlParam::Json(v) => format!("{}::jsonb", quote_literal(&v.to_string())),
        SqlParam::JsonArray(vs) => {
            let items: Vec<String> = vs.iter().map(|v| quote_literal(&v.to_string())).collect();
            format!("ARRAY[{}]::jsonb[]", items.join(", "))
        }
        SqlParam::Timestamp(t) => format!("{}::timestamptz", quote_literal(&t.to_rfc3339())),
        SqlParam::BigInt(n) => format!("{n}::bigint"),
    }
}

/// Every plan node (recursively).
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for child in children {
            nodes(child, out);
        }
    }
}

/// Every node of the plan of `statement` in `mode` (`force_custom_plan` /
/// `force_generic_plan`), and the plan itself.
async fn plan_nodes(
    db: &TestDb,
    name: &str,
    statement: &Statement,
    mode: &str,
) -> (Vec<Value>, Value) {
    let mut conn = db.connect().await;
    let args: Vec<String> = statement.params.iter().map(literal).collect();
    // The parameter types the library binds, as sqlx sends them.
    let types: Vec<&str> = statement
        .params
        .iter()
        .map(|p| match p {
            SqlParam::Text(_) => "text",
            SqlParam::Json(_) => "jsonb",
            SqlParam::JsonArray(_) => "jsonb[]",
            SqlParam::Timestamp(_) => "timestamptz",
            SqlParam::BigInt(_) => "bigint",
        })
        .collect();
    let declared = if types.is_empty() {
        String::new()
    } else {
        format!("({})", types.join(", "))
    };
    let script = format!(
        "SET plan_cache_mode = {mode}; PREPARE q{declared} AS {};",
        statement.sql
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", statement.sql));
    let explain = if args.is_empty() {
        "EXPLAIN (FORMAT JSON) EXECUTE q".to_owned()
    } else {
        format!("EXPLAIN (FORMAT JSON) EXECUTE q({})", args.join(", "))
    };
    let (plan,): (Value,) = sqlx::query_as(sqlx::AssertSqlSafe(explain))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let mut all = Vec::new();
    nodes(&plan[0]["Plan"], &mut all);
    (all, plan)
}

/// Plans `statement` in both plan cache modes and checks that every access to the audit
/// tables in `tables` is an index scan.
async fn assert_index_backed(db: &TestDb, name: &str, statement: &Statement, tables: &[&str]) {
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let (all, plan) = plan_nodes(db, name, statement, mode).await;
        let touching: Vec<&Value> = all
            .iter()
            .filter(|n| {
                n.get("Relation Name")
                    .and_then(Value::as_str)
                    .is_some_and(|r| tables.contains(&r))
            })
            .collect();
        assert!(
            !touching.is_empty(),
            "{name} ({mode}) reads none of {tables:?}: {plan}"
        );
        for node in touching {
            let kind = node["Node Type"].as_str().unwrap_or_default();
            assert!(
                matches!(kind, "Index Scan" | "Index Only Scan" | "Bitmap Heap Scan"),
                "{name} ({mode}): {kind} on {}\n{}",
                node["Relation Name"],
                serde_json::to_string_pretty(&plan).unwrap()
            );
        }
    }
}

/// The activity chart's query tells PostgreSQL how many buckets it counts (an integer series
/// of known length): a series of timestamps was guessed at 1,000 rows, and the cost that
/// followed turned on JIT compilation, 40 ms for a chart that takes 0.2.
#[tokio::test]
async fn the_activity_chart_plans_one_row_per_bucket_without_jit() {
    use threadline_core::query::ActivityWindow;
    let db = filled(SPEC).await;
    let schema = Ident::new("public").unwrap();
    let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    for filter in [
        TimelineFilter::new().actor(ActorRef::user("7").unwrap()),
        TimelineFilter::new()
            .table("table_3".parse().unwrap())
            .from(start + Duration::hours(2)),
    ] {
        let window = ActivityWindow::for_filter(&filter, start + Duration::days(1));
        let statement = query::activity(&schema, &filter, &window).unwrap();
        let (all, plan) = plan_nodes(&db, "activity", &statement, "force_custom_plan").await;
        let top = &all[0];
        assert_eq!(
            top["Plan Rows"].as_u64(),
            Some(window.buckets().len() as u64),
            "{}",
            serde_json::to_string_pretty(&plan).unwrap()
        );
        let cost = top["Total Cost"].as_f64().unwrap();
        assert!(cost < 100_000.0, "above jit_above_cost: {cost}");
    }
}

/// A fresh install holding the synthetic trail `spec`, with current statistics.
async fn filled(spec: Synthetic) -> TestDb {
    let db = TestDb::installed().await;
    fill_synthetic(&db.pool, "public", spec, 100_000, |_| {})
        .await
        .unwrap();
    db.exec("VACUUM ANALYZE audit_changes").await;
    db.exec("VACUUM ANALYZE audit_transactions").await;
    db
}

#[tokio::test]
async fn every_method_is_index_backed_on_300k_changes() {
    let db = filled(SPEC).await;
    let schema = Ident::new("public").unwrap();
    let table = "table_3".parse().unwrap();
    let key = json!({"id": 42});
    let candidates = threadline_core::query::PrimaryKey::from(42)
        .candidates("table_3", &["id".to_owned()])
        .unwrap();
    // Synthetic transaction g starts at 2026-01-01 + g seconds.
    let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let middle = start + Duration::seconds(SPEC.transactions / 2);
    let actor = ActorRef::user("7").unwrap();
    let changes = &["audit_changes"];

    // history and as_of (and the key lookup they start with).
    assert_index_backed(
        &db,
        "key sample",
        &query::table_key_sample(&schema, &table),
        changes,
    )
    .await;
    assert_index_backed(
        &db,
        "history",
        &query::history(&schema, &table, candidates.clone()),
        changes,
    )
    .await;
    assert_index_backed(
        &db,
        "as_of",
        &query::as_of(&schema, &table, vec![key], middle),
        changes,
    )
    .await;

    // timeline: first page and a page deep in the middle, by table and time, and unfiltered.
    let by_table_and_time = TimelineFilter::new()
        .table("table_3".parse().unwrap())
        .from(start + Duration::hours(1))
        .to(start + Duration::hours(7));
    let deep = |filter: &TimelineFilter| {
        let first = query::timeline(&schema, filter, &Page::first()).unwrap();
        let rows: Vec<(DateTime<chrono::Utc>, i64)> =
            (0..=100).map(|i| (middle, 150_000 - i)).collect();
        let next = first.plan.finish(rows, |r| *r).next.unwrap();
        query::timeline(&schema, filter, &Page::at(next)).unwrap()
    };
    for (name, filter) in [
        ("timeline by table and time", by_table_and_time.clone()),
        (
            "timeline by table",
            TimelineFilter::new().table("table_3".parse().unwrap()),
        ),
        ("timeline", TimelineFilter::new()),
        (
            "timeline by actor",
            TimelineFilter::new().actor(actor.clone()),
        ),
        (
            "timeline by correlation id",
            TimelineFilter::new().correlation_id("corr-1500"),
        ),
        (
            "timeline by request id",
            TimelineFilter::new().request_id("req-15000"),
        ),
    ] {
        let first = query::timeline(&schema, &filter, &Page::first()).unwrap();
        assert_index_backed(&db, name, &first.statement, changes).await;
        assert_index_backed(
            &db,
            &format!("{name}, deep page"),
            &deep(&filter).statement,
            changes,
        )
        .await;
    }

    // timeline by trace id: the partial trace_id index finds the transactions (no scan of
    // audit_transactions either), the transaction_id index their changes.
    let by_trace = TimelineFilter::new().trace_id(format!("{:032x}", 15_000).parse().unwrap());
    for (name, statement) in [
        (
            "timeline by trace id",
            query::timeline(&schema, &by_trace, &Page::first())
                .unwrap()
                .statement,
        ),
        ("timeline by trace id, deep page", deep(&by_trace).statement),
        (
            "count by trace id",
            query::count(&schema, &by_trace).unwrap(),
        ),
    ] {
        assert_index_backed(
            &db,
            name,
            &statement,
            &["audit_changes", "audit_transactions"],
        )
        .await;
    }

    // actor_history: first page and a deep page.
    let first = query::actor_history(&schema, &actor, &Page::first().with_size(10)).unwrap();
    let transactions = &["audit_transactions"];
    assert_index_backed(&db, "actor_history", &first.statement, transactions).await;
    let rows: Vec<(DateTime<chrono::Utc>, i64)> = (0..=10).map(|i| (middle, 15_000 - i)).collect();
    let next = first.plan.finish(rows, |r| *r).next.unwrap();
    let deep_actor = query::actor_history(&schema, &actor, &Page::at(next).with_size(10)).unwrap();
    assert_index_backed(
        &db,
        "actor_history, deep page",
        &deep_actor.statement,
        transactions,
    )
    .await;

    // transaction(id): the transaction and its changes.
    assert_index_backed(
        &db,
        "transaction",
        &query::transaction(&schema, 15_000),
        transactions,
    )
    .await;
    assert_index_backed(
        &db,
        "transaction changes",
        &query::transaction_changes(&schema, 15_000),
        changes,
    )
    .await;
}

/// The timeline by actor reads an actor's changes newest first from the `actor_key` index,
/// so that its first page stops after one page instead of sorting all of the actor's changes: here 4,000 of 200k, where
/// walking the whole trail by time would pass 50 other changes for each of the actor's.
#[tokio::test]
async fn timeline_by_actor_pages_through_the_actor_key_index() {
    let db = filled(Synthetic {
        changes: 200_000,
        transactions: 20_000,
        actors: 50,
        ..SPEC
    })
    .await;
    let schema = Ident::new("public").unwrap();
    let by_actor = TimelineFilter::new().actor(ActorRef::user("1").unwrap());
    let first = query::timeline(&schema, &by_actor, &Page::first()).unwrap();
    let t = DateTime::parse_from_rfc3339("2026-01-01T02:00:00Z")
        .unwrap()
        .to_utc();
    let rows: Vec<(DateTime<chrono::Utc>, i64)> = (0..101).map(|i| (t, 50_000 - i)).collect();
    let next = first.plan.finish(rows, |r| *r).next.unwrap();
    let deep = query::timeline(&schema, &by_actor, &Page::at(next)).unwrap();
    for statement in [first.statement, deep.statement] {
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let (all, plan) = plan_nodes(&db, "timeline by actor", &statement, mode).await;
            let on_changes: Vec<&Value> = all
                .iter()
                .filter(|n| {
                    n["Relation Name"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("audit_changes"))
                })
                .collect();
            assert!(
                !on_changes.is_empty()
                    && on_changes.iter().all(|n| {
                        n["Index Name"]
                            .as_str()
                            .is_some_and(|i| i.contains("actor_key"))
                    }),
                "timeline by actor ({mode}) does not read the actor_key index:\n{}",
                serde_json::to_string_pretty(&plan).unwrap()
            );
            assert!(
                !all.iter().any(|n| n["Node Type"] == "Sort"),
                "timeline by actor ({mode}) sorts the actor's changes:\n{}",
                serde_json::to_string_pretty(&plan).unwrap()
            );
        }
    }
}
