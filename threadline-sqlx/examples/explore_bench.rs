//! Exploration benchmark: latency of every `Threadline` method on a large audit trail, and
//! the index bytes per change. Not a test; see guides/indexing.md for the latest results.
//!
//! ```text
//! cargo run --release -p threadline-sqlx --example explore_bench              # 10M changes
//! cargo run --release -p threadline-sqlx --example explore_bench -- --reuse   # skip the fill
//! cargo run -p threadline-sqlx --example explore_bench -- --quick             # CI smoke run
//! cargo run --release -p threadline-sqlx --example explore_bench -- --capture-cost
//! ```
//!
//! The trail is synthetic (`threadline_test_support::fill_synthetic`): 20 tables, 1M
//! transactions of 10 changes, 1M distinct rows, 1,000 actors, written set-based straight into
//! the installed audit tables, so every index grows as it would under capture. The server
//! comes from `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); the
//! benchmark uses its own database, `threadline_explore_bench`.
//!
//! `--capture-cost` measures instead what each index costs capture: single-row INSERT
//! transactions (W1) and 1,000-row INSERT ... SELECT statements (W3) into an audited `posts`
//! table, with the full index set and with each secondary index dropped in turn.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use threadline_core::query::{self, Cursor, PagePlan};
use threadline_sqlx::{
    ActorRef, InstallOptions, Page, TableCapture, Threadline, TimelineFilter, TransactionExt,
};
use threadline_test_support::{Synthetic, fill_synthetic, server_url};

type BoxError = Box<dyn std::error::Error>;

struct Args {
    spec: Synthetic,
    samples: usize,
    database: String,
    reuse: bool,
    capture_cost: bool,
    seconds: u64,
    rounds: usize,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        spec: Synthetic {
            changes: 10_000_000,
            transactions: 1_000_000,
            tables: 20,
            rows_per_table: 50_000,
            actors: 1_000,
        },
        samples: 300,
        database: "threadline_explore_bench".into(),
        reuse: false,
        capture_cost: false,
        seconds: 5,
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                args.spec.changes = 200_000;
                args.spec.transactions = 20_000;
                args.spec.rows_per_table = 1_000;
                args.spec.actors = 100;
                args.samples = 30;
                args.seconds = 1;
                args.rounds = 1;
                args.database = "threadline_explore_bench_quick".into();
            }
            "--changes" => args.spec.changes = value()?.parse()?,
            "--transactions" => args.spec.transactions = value()?.parse()?,
            "--samples" => args.samples = value()?.parse()?,
            "--database" => args.database = value()?,
            "--reuse" => args.reuse = true,
            "--capture-cost" => args.capture_cost = true,
            "--seconds" => args.seconds = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "explore_bench [--quick] [--changes N] [--transactions N] [--samples N] \
                     [--database NAME] [--reuse] [--capture-cost [--seconds S] [--rounds N]]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other} (see --help)").into()),
        }
    }
    if args.spec.changes < 1
        || args.spec.transactions < 1
        || args.spec.changes < args.spec.transactions
    {
        return Err("need 1 <= --transactions <= --changes".into());
    }
    Ok(args)
}

/// A small deterministic generator, so that runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as i64
    }
}

fn admin() -> Result<PgConnectOptions, BoxError> {
    Ok(server_url().parse::<PgConnectOptions>()?)
}

async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), BoxError> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Creates (or reuses) the benchmark database and returns a pool on it.
async fn database(name: &str, fresh: bool) -> Result<PgPool, BoxError> {
    let mut conn = admin()?.connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if fresh || !exists {
        exec(
            &mut conn,
            &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        )
        .await?;
        exec(&mut conn, &format!("CREATE DATABASE \"{name}\"")).await?;
    }
    conn.close().await?;
    Ok(PgPoolOptions::new()
        .max_connections(4)
        .connect_with(admin()?.database(name))
        .await?)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// A cursor positioned at `(at, id)`, as if a previous page had ended there.
fn cursor_at(plan: &PagePlan, at: DateTime<Utc>, id: i64) -> Cursor {
    let rows = vec![(at, id); plan.fetch_limit() as usize];
    plan.finish(rows, |r| *r)
        .next
        .unwrap_or_else(|| unreachable!("a full page always has a next cursor"))
}

async fn explore(args: &Args) -> Result<(), BoxError> {
    let spec = args.spec;
    let mut pool = database(&args.database, !args.reuse).await?;
    let have: i64 = if args.reuse {
        sqlx::query_scalar("SELECT count(*) FROM audit_changes")
            .fetch_one(&pool)
            .await
            .unwrap_or(0)
    } else {
        0
    };
    if have != spec.changes {
        if args.reuse {
            pool.close().await;
            pool = database(&args.database, true).await?;
        }
        threadline_sqlx::install(&pool, &InstallOptions::default()).await?;
        let started = Instant::now();
        eprintln!(
            "filling {} changes in {} transactions ({} tables, {} rows each, {} actors)",
            spec.changes, spec.transactions, spec.tables, spec.rows_per_table, spec.actors
        );
        fill_synthetic(&pool, "public", spec, 500_000, |done| {
            eprintln!("  {done} changes, {:.0} s", started.elapsed().as_secs_f64());
        })
        .await?;
        let mut conn = pool.acquire().await?;
        exec(&mut conn, "VACUUM ANALYZE audit_changes").await?;
        exec(&mut conn, "VACUUM ANALYZE audit_transactions").await?;
        eprintln!(
            "filled and analyzed in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }

    println!(
        "## Index bytes per change ({} changes, {} transactions)\n",
        spec.changes, spec.transactions
    );
    println!("| relation | MB | bytes per change |\n|---|---:|---:|");
    let sizes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.relname::text, pg_relation_size(c.oid)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')
           AND (c.relname LIKE 'audit_changes%' OR c.relname LIKE 'audit_transactions%')
         ORDER BY c.relkind DESC, c.relname",
    )
    .fetch_all(&pool)
    .await?;
    let per_change = |bytes: i64| bytes as f64 / spec.changes as f64;
    let mut index_total = 0;
    for (name, bytes) in &sizes {
        println!(
            "| {name} | {:.1} | {:.1} |",
            *bytes as f64 / 1e6,
            per_change(*bytes)
        );
        if name.ends_with("_idx") || name.ends_with("_pkey") {
            index_total += bytes;
        }
    }
    println!(
        "| **all indexes** | {:.1} | **{:.1}** |\n",
        index_total as f64 / 1e6,
        per_change(index_total)
    );

    let tl = Threadline::new(pool.clone());
    let schema = tl.schema().clone();
    let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")?.to_utc();
    let seconds = |s: i64| start + chrono::Duration::seconds(s);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let table = |i: i64| format!("table_{i}");
    let hour = chrono::Duration::hours(1);

    println!(
        "## Latency ({} samples per method, after {} warm-up calls)\n",
        args.samples,
        args.samples / 10
    );
    println!("| method | p50 ms | p95 ms | rows per call |\n|---|---:|---:|---:|");
    let methods = [
        "history(table, pk)",
        "as_of(table, pk, at)",
        "timeline, first page",
        "timeline, deep page",
        "timeline by table, first page",
        "timeline by table + 1 h window, deep page",
        "timeline by actor, first page",
        "timeline by request id",
        "actor_history, first page",
        "actor_history, deep page",
        "transaction(id)",
        "count(table + 1 h window)",
    ];
    for (m, name) in methods.iter().enumerate() {
        let mut times = Vec::with_capacity(args.samples);
        let mut rows = 0usize;
        let warmup = args.samples / 10;
        for i in 0..args.samples + warmup {
            let t = table(rng.below(spec.tables));
            let pk = rng.below(spec.rows_per_table);
            let txn = 1 + rng.below(spec.transactions);
            let at = seconds(txn);
            let actor = ActorRef::user(rng.below(spec.actors).to_string())?;
            let started = Instant::now();
            let n = match m {
                0 => tl.history(t.as_str(), pk).await?.len(),
                1 => usize::from(tl.as_of(t.as_str(), pk, at).await?.image().is_some()),
                2 => tl
                    .timeline(&TimelineFilter::new(), Page::first())
                    .await?
                    .items
                    .len(),
                3 | 5 => {
                    let filter = if m == 3 {
                        TimelineFilter::new()
                    } else {
                        TimelineFilter::new()
                            .table(t.parse()?)
                            .from(at - hour)
                            .to(at + hour)
                    };
                    let plan = query::timeline(&schema, &filter, &Page::first())?.plan;
                    let cursor = cursor_at(&plan, at, txn * spec.changes_per_transaction());
                    tl.timeline(&filter, Page::at(cursor)).await?.items.len()
                }
                4 => {
                    let filter = TimelineFilter::new().table(t.parse()?);
                    tl.timeline(&filter, Page::first()).await?.items.len()
                }
                6 => {
                    let filter = TimelineFilter::new().actor(actor);
                    tl.timeline(&filter, Page::first()).await?.items.len()
                }
                7 => {
                    let filter = TimelineFilter::new().request_id(format!("req-{txn}"));
                    tl.timeline(&filter, Page::first()).await?.items.len()
                }
                8 => tl.actor_history(&actor, Page::first()).await?.items.len(),
                9 => {
                    let plan = query::actor_history(&schema, &actor, &Page::first())?.plan;
                    let cursor = cursor_at(&plan, at, txn);
                    tl.actor_history(&actor, Page::at(cursor))
                        .await?
                        .items
                        .len()
                }
                10 => tl
                    .transaction(txn)
                    .await?
                    .map_or(0, |d| d.changes.len() + 1),
                _ => {
                    let filter = TimelineFilter::new()
                        .table(t.parse()?)
                        .from(at)
                        .to(at + hour);
                    tl.count(&filter).await? as usize
                }
            };
            if i >= warmup {
                times.push(started.elapsed());
                rows += n;
            }
        }
        times.sort();
        println!(
            "| {name} | {:.2} | {:.2} | {:.0} |",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            rows as f64 / args.samples as f64
        );
    }
    pool.close().await;
    Ok(())
}

/// The secondary indexes `install` creates on the audit tables.
async fn secondary_indexes(pool: &PgPool) -> Result<Vec<String>, BoxError> {
    Ok(sqlx::query_scalar(
        "SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         WHERE c.relname IN ('audit_changes', 'audit_transactions') AND NOT i.indisprimary
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}

const POSTS: &str = "CREATE TABLE posts (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    title text NOT NULL, body text NOT NULL, status text NOT NULL, author_id bigint NOT NULL,
    views int NOT NULL DEFAULT 0, metadata jsonb, updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX posts_author_id_idx ON posts (author_id);";
const W1: &str = "INSERT INTO posts (title, body, status, author_id, metadata)
    VALUES ('Post', repeat('lorem ipsum ', 25), 'draft', 7, '{\"tags\": [\"rust\"]}')";
const W3: &str = "INSERT INTO posts (title, body, status, author_id, metadata)
    SELECT 'Post ' || g, repeat('lorem ipsum ', 25), 'draft', g % 1000, '{\"tags\": [\"rust\"]}'
    FROM generate_series(1, 1000) AS g";

/// Transactions per second of `statement` (each in its own transaction with an actor).
async fn tps(conn: &mut PgConnection, statement: &str, seconds: u64) -> Result<f64, BoxError> {
    let actor = ActorRef::user("u1")?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let mut tx = conn.begin().await?;
        tx.with_actor(&actor).await?;
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn capture_cost(args: &Args) -> Result<(), BoxError> {
    let pool = database(&args.database, true).await?;
    threadline_sqlx::install(&pool, &InstallOptions::default()).await?;
    let mut variants = vec![("all indexes".to_owned(), None)];
    for index in secondary_indexes(&pool).await? {
        variants.push((format!("without {index}"), Some(index)));
    }
    variants.push(("no secondary index".to_owned(), Some("*".to_owned())));
    pool.close().await;

    let mut results: Vec<(f64, f64, f64)> = Vec::new();
    for (name, dropped) in &variants {
        let mut w1 = Vec::new();
        let mut w3 = Vec::new();
        let mut bytes = 0.0;
        for _ in 0..args.rounds {
            let pool = database(&args.database, true).await?;
            threadline_sqlx::install(&pool, &InstallOptions::default()).await?;
            let mut conn = pool.acquire().await?.detach();
            exec(&mut conn, POSTS).await?;
            threadline_sqlx::audit_table(
                &pool,
                &InstallOptions::default(),
                &"posts".parse()?,
                &TableCapture::default(),
            )
            .await?;
            let drop: Vec<String> = match dropped.as_deref() {
                None => Vec::new(),
                Some("*") => secondary_indexes(&pool).await?,
                Some(index) => vec![index.to_owned()],
            };
            for index in drop {
                exec(&mut conn, &format!("DROP INDEX {index}")).await?;
            }
            exec(&mut conn, "SET synchronous_commit = off").await?;
            w1.push(tps(&mut conn, W1, args.seconds).await?);
            exec(&mut conn, "TRUNCATE audit_changes, audit_transactions").await?;
            w3.push(tps(&mut conn, W3, args.seconds).await?);
            exec(&mut conn, "VACUUM ANALYZE audit_changes").await?;
            bytes = sqlx::query_scalar::<_, f64>(
                "SELECT pg_indexes_size('audit_changes')::float8 / greatest(count(*), 1)
                 FROM audit_changes",
            )
            .fetch_one(&mut conn)
            .await?;
            conn.close().await?;
            pool.close().await;
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        results.push((median(&mut w1), median(&mut w3), bytes));
        eprintln!(
            "{name}: W1 {:.0} tps, W3 {:.1} tps",
            results.last().map_or(0.0, |r| r.0),
            results.last().map_or(0.0, |r| r.1)
        );
    }
    println!(
        "## Capture cost of each index ({} rounds x {} s, synchronous_commit = off)\n",
        args.rounds, args.seconds
    );
    println!(
        "| variant | W1 tps | W1 vs all | W3 tps | W3 vs all | index bytes per row after W3 |\n|---|---:|---:|---:|---:|---:|"
    );
    let (all1, all3, _) = results[0];
    for ((name, _), (w1, w3, bytes)) in variants.iter().zip(&results) {
        println!(
            "| {name} | {w1:.0} | {:+.1}% | {w3:.1} | {:+.1}% | {bytes:.1} |",
            (w1 / all1 - 1.0) * 100.0,
            (w3 / all3 - 1.0) * 100.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    if args.capture_cost {
        capture_cost(&args).await
    } else {
        explore(&args).await
    }
}
