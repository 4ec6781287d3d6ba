//! Exploration benchmark: latency of every `Threadline` method on a large audit trail, and
//! the index bytes per change. Not a test; see guides/indexing.md for the latest results.
//!
//! ```text
//! cargo run --release -p threadline-sqlx --example explore_bench              # 10M changes
//! cargo run --release -p threadline-sqlx --example explore_bench -- --reuse   # skip the fill
//! cargo run -p threadline-sqlx --example explore_bench -- --quick             # CI smoke run
//! cargo run --release -p threadline-sqlx --example explore_bench -- --capture-cost
//! cargo run --release -p threadline-sqlx --example explore_bench -- --changes 30000000 \
//!     --transactions 3000000 --span-days 365 --partitioned --retention   # guides/scaling.md
//! ```
//!
//! The trail is synthetic (`threadline_test_support::fill_synthetic`): 20 tables, 1M
//! transactions of 10 changes, 1M distinct rows, 1,000 actors, written set-based straight into
//! the installed audit tables, so every index grows as it would under capture. The server
//! comes from `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); the
//! benchmark uses its own database, `threadline_explore_bench`.
//!
//! Transactions start 1 s apart from 2026-01-01, or with `--span-days D` spread evenly over D
//! days. `--partitioned` installs the partitioned layout (monthly): the months of the trail
//! get their partitions before the fill (as `partitions ensure` makes them for rows in
//! `DEFAULT`), then `ensure_partitions` makes the current one and those ahead; the run fails
//! if a row lands in `DEFAULT`. `--retention` then times the purge of the oldest month (the
//! library's `purge_partitions` / `purge_with_progress`, what `threadline retention purge
//! --execute` runs): on a partitioned trail it drops the month's partitions, and the same
//! rows are then purged row by row from a plain trail of the first two months
//! (`<database>_plain`, dropped afterwards).
//!
//! `--capture-cost` measures instead what each index costs capture: single-row INSERT
//! transactions (W1) and 1,000-row INSERT ... SELECT statements (W3) into an audited `posts`
//! table, each transaction with an actor and a request id, with the full index set and with
//! each secondary index dropped in turn (a fresh database per variant and round). It ends
//! with the exact WAL bytes every relation adds per captured row (read back with
//! `pg_walinspect`), which, unlike timings, does not depend on what else the machine runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use threadline_core::partition::{PartitionRange, PartitionedTable, create_partition_sql};
use threadline_core::query::{self, Cursor, PagePlan};
use threadline_sqlx::{
    ActivityWindow, ActorRef, AuditContext, EnsureOptions, Ident, InstallOptions, Page,
    PartitionInterval, PurgeOptions, RetentionPolicy, StorageLayout, TableCapture, Threadline,
    TimelineFilter, TransactionExt,
};
use threadline_test_support::{Synthetic, fill_synthetic, server_url};

type BoxError = Box<dyn std::error::Error>;

struct Args {
    spec: Synthetic,
    samples: usize,
    database: String,
    reuse: bool,
    drop_after: bool,
    capture_cost: bool,
    seconds: u64,
    rounds: usize,
    partitioned: bool,
    retention: bool,
    latency: bool,
    method_seconds: Option<u64>,
}

/// Latency of every `Threadline` method on a large synthetic audit trail, or (with
/// `--capture-cost`) what each index costs capture.
#[derive(Parser)]
#[command(name = "explore_bench")]
struct Cli {
    /// CI smoke size: 200,000 changes in 20,000 transactions, 30 samples, one 1-second
    /// round, in a database of its own that is dropped afterwards. Explicit options win.
    #[arg(long)]
    quick: bool,
    /// Rows of `audit_changes` to fill [default: 10000000].
    #[arg(long, value_name = "N")]
    changes: Option<i64>,
    /// Rows of `audit_transactions` to fill [default: 1000000].
    #[arg(long, value_name = "N")]
    transactions: Option<i64>,
    /// Calls timed per method [default: 300].
    #[arg(long, value_name = "N")]
    samples: Option<usize>,
    /// The benchmark's database [default: threadline_explore_bench].
    #[arg(long, value_name = "NAME")]
    database: Option<String>,
    /// Measure the trail already in the database instead of filling it again.
    #[arg(long)]
    reuse: bool,
    /// Drop the database at the end.
    #[arg(long)]
    drop: bool,
    /// Measure what each index costs capture instead of query latency.
    #[arg(long)]
    capture_cost: bool,
    /// With --capture-cost: seconds per workload [default: 5].
    #[arg(long, value_name = "S")]
    seconds: Option<u64>,
    /// With --capture-cost: rounds per variant [default: 3].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Spread the transactions evenly over D days from 2026-01-01 [default: 1 s apart].
    #[arg(long, value_name = "D")]
    span_days: Option<u32>,
    /// Install the partitioned layout (monthly partitions, every month of the trail made
    /// before the fill).
    #[arg(long)]
    partitioned: bool,
    /// Also time the retention purge of the oldest month (see the module documentation).
    #[arg(long)]
    retention: bool,
    /// Skip the latency table (e.g. with --reuse --retention).
    #[arg(long)]
    skip_latency: bool,
    /// Stop timing a method after S seconds (at least 10 samples): a slow method then
    /// reports fewer samples [default: every sample].
    #[arg(long, value_name = "S")]
    method_seconds: Option<u64>,
}

fn parse_args() -> Result<Args, BoxError> {
    let cli = Cli::parse();
    let mut args = Args {
        spec: Synthetic {
            changes: 10_000_000,
            transactions: 1_000_000,
            tables: 20,
            rows_per_table: 50_000,
            actors: 1_000,
            transaction_spacing: Duration::from_secs(1),
        },
        samples: 300,
        database: "threadline_explore_bench".into(),
        reuse: cli.reuse,
        drop_after: cli.drop,
        capture_cost: cli.capture_cost,
        seconds: 5,
        rounds: 3,
        partitioned: cli.partitioned,
        retention: cli.retention,
        latency: !cli.skip_latency,
        method_seconds: cli.method_seconds,
    };
    if cli.quick {
        args.spec.changes = 200_000;
        args.spec.transactions = 20_000;
        args.spec.rows_per_table = 1_000;
        args.spec.actors = 100;
        args.samples = 30;
        args.seconds = 1;
        args.rounds = 1;
        args.database = "threadline_explore_bench_quick".into();
        args.drop_after = true;
    }
    args.spec.changes = cli.changes.unwrap_or(args.spec.changes);
    args.spec.transactions = cli.transactions.unwrap_or(args.spec.transactions);
    args.samples = cli.samples.unwrap_or(args.samples);
    args.database = cli.database.unwrap_or(args.database);
    args.seconds = cli.seconds.unwrap_or(args.seconds);
    args.rounds = cli.rounds.unwrap_or(args.rounds);
    if args.spec.changes < 1
        || args.spec.transactions < 1
        || args.spec.changes < args.spec.transactions
    {
        return Err("need 1 <= --transactions <= --changes".into());
    }
    if let Some(days) = cli.span_days {
        // Over transactions + 1 gaps, so that the last transaction starts before the span ends.
        let micros = i128::from(days) * 86_400_000_000 / (i128::from(args.spec.transactions) + 1);
        args.spec.transaction_spacing = Duration::from_micros(u64::try_from(micros)?);
        let per_transaction = u64::try_from(args.spec.changes_per_transaction())?;
        if days == 0 || args.spec.transaction_spacing < Duration::from_millis(per_transaction) {
            return Err(format!(
                "--span-days {days} is too short: changes are 1 ms apart, so {} transactions of {per_transaction} changes need at least {} ms each",
                args.spec.transactions, per_transaction
            )
            .into());
        }
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
    conn.close().await?;
    if fresh || !exists {
        drop_database(name).await?;
        let mut conn = admin()?.connect().await?;
        exec(&mut conn, &format!("CREATE DATABASE \"{name}\"")).await?;
        conn.close().await?;
    }
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
        .expect("a full page always has a next cursor")
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
        fill(&pool, spec, args.partitioned).await?;
    }
    let partitioned = matches!(
        threadline_sqlx::storage_layout(&pool, &InstallOptions::default()).await?,
        StorageLayout::Partitioned { .. }
    );
    if partitioned {
        print_partitions(&pool).await?;
    }

    println!(
        "## Index bytes per change ({} changes, {} transactions)\n",
        spec.changes, spec.transactions
    );
    println!("| relation | MB | bytes per change |\n|---|---:|---:|");
    // Each table and index with its partitions, if any, summed.
    let sizes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.relname::text, sum(pg_relation_size(coalesce(t.relid, c.oid)))::bigint
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN LATERAL pg_partition_tree(c.oid) AS t ON true
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 'p', 'I') AND NOT c.relispartition
           AND (c.relname LIKE 'audit_changes%' OR c.relname LIKE 'audit_transactions%')
         GROUP BY c.relname, c.relkind
         ORDER BY c.relkind IN ('i', 'I'), c.relname",
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

    if args.latency {
        latency(args, &pool).await?;
    }
    if args.retention {
        retention(args, &pool, partitioned).await?;
    }
    pool.close().await;
    if args.drop_after {
        drop_database(&args.database).await?;
    }
    Ok(())
}

/// Installs Threadline (with `partitioned`, monthly partitions for every month of the trail
/// and those `ensure` makes), fills the trail and runs `VACUUM ANALYZE`.
async fn fill(pool: &PgPool, spec: Synthetic, partitioned: bool) -> Result<(), BoxError> {
    let started = Instant::now();
    if partitioned {
        let interval = PartitionInterval::Month;
        let options = InstallOptions::default().with_partitioning(interval);
        threadline_sqlx::install(pool, &options).await?;
        // `ensure` makes the partition of now, those ahead, and one for each range that has
        // rows in DEFAULT. The trail is written straight into the tables, so its months are
        // made first, with the same DDL `ensure` runs.
        let owner: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(pool)
            .await?;
        let owner = Ident::new(owner)?;
        let last = spec.transaction_start(spec.transactions)
            + chrono::Duration::milliseconds(spec.changes_per_transaction());
        let mut made = 0;
        for table in PartitionedTable::ALL {
            let mut range = PartitionRange::containing(table, interval, spec.transaction_start(1));
            while range.from <= last {
                let sql = create_partition_sql(&options.schema, &range, &owner);
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await?;
                made += 1;
                range = PartitionRange::containing(table, interval, range.to);
            }
        }
        let ensured =
            threadline_sqlx::ensure_partitions(pool, &options, &EnsureOptions::default()).await?;
        eprintln!(
            "partitioned layout: {made} partitions for the trail, {} more by ensure_partitions",
            ensured.created.len()
        );
    } else {
        threadline_sqlx::install(pool, &InstallOptions::default()).await?;
    }
    eprintln!(
        "filling {} changes in {} transactions ({} tables, {} rows each, {} actors, {} to {})",
        spec.changes,
        spec.transactions,
        spec.tables,
        spec.rows_per_table,
        spec.actors,
        spec.transaction_start(1),
        spec.transaction_start(spec.transactions)
    );
    fill_synthetic(pool, "public", spec, 500_000, |done| {
        eprintln!("  {done} changes, {:.0} s", started.elapsed().as_secs_f64());
    })
    .await?;
    if partitioned {
        let options = InstallOptions::default();
        for p in threadline_sqlx::list_partitions(pool, &options).await? {
            if p.is_default() && p.rows > 0 {
                return Err(format!("{} holds {} rows after the fill", p.name, p.rows).into());
            }
        }
    }
    let mut conn = pool.acquire().await?;
    exec(&mut conn, "VACUUM ANALYZE audit_changes").await?;
    exec(&mut conn, "VACUUM ANALYZE audit_transactions").await?;
    eprintln!(
        "filled and analyzed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Prints the partitions of `audit_changes`.
async fn print_partitions(pool: &PgPool) -> Result<(), BoxError> {
    println!("## Partitions of audit_changes\n");
    println!("| partition | rows (estimate; exact for DEFAULT) | MB |\n|---|---:|---:|");
    for p in threadline_sqlx::list_partitions(pool, &InstallOptions::default()).await? {
        if p.table == "audit_changes" {
            println!("| {} | {} | {:.0} |", p.name, p.rows, p.bytes as f64 / 1e6);
        }
    }
    println!();
    Ok(())
}

/// The latency of every method.
async fn latency(args: &Args, pool: &PgPool) -> Result<(), BoxError> {
    let spec = args.spec;
    let tl = Threadline::new(pool.clone());
    let schema = tl.schema().clone();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let table = |i: i64| format!("table_{i}");
    let hour = chrono::Duration::hours(1);

    println!(
        "## Latency ({} samples per method, after {} warm-up calls)\n",
        args.samples,
        args.samples / 10
    );
    println!("| method | p50 ms | p95 ms | rows per call | samples |\n|---|---:|---:|---:|---:|");
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
        "previous_images(page of 50 changes)",
        "activity, every change, 30 days per day",
        "activity by table, 30 days per day",
        "activity by actor, 1 day per hour",
    ];
    for (m, name) in methods.iter().enumerate() {
        let mut times = Vec::with_capacity(args.samples);
        let mut rows = 0usize;
        let warmup = args.samples / 10;
        let mut warm = 0;
        let method_started = Instant::now();
        while times.len() < args.samples {
            // With --method-seconds, warm-up ends after a tenth of the budget, timing after it.
            if let Some(budget) = args.method_seconds.map(Duration::from_secs) {
                if method_started.elapsed() > budget / 10 {
                    warm = warmup;
                }
                if times.len() >= 10 && method_started.elapsed() > budget {
                    break;
                }
            }
            let t = table(rng.below(spec.tables));
            let pk = rng.below(spec.rows_per_table);
            let txn = 1 + rng.below(spec.transactions);
            let at = spec.transaction_start(txn);
            let actor = ActorRef::user(rng.below(spec.actors).to_string())?;
            // The explorer's transaction page looks up the previous version of each change
            // on its page: here a timeline page of 50 (read before the clock starts).
            let page_of_50 = if m == 12 {
                let plan = query::timeline(&schema, &TimelineFilter::new(), &Page::first())?.plan;
                let cursor = cursor_at(&plan, at, txn * spec.changes_per_transaction());
                tl.timeline(&TimelineFilter::new(), Page::at(cursor).with_size(50))
                    .await?
                    .items
            } else {
                Vec::new()
            };
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
                11 => {
                    let filter = TimelineFilter::new()
                        .table(t.parse()?)
                        .from(at)
                        .to(at + hour);
                    tl.count(&filter).await? as usize
                }
                12 => {
                    let page: Vec<&_> = page_of_50.iter().collect();
                    tl.previous_images(&page).await?.len()
                }
                _ => {
                    // The chart the explorer draws above that timeline: its window ends at `at`.
                    let filter = match m {
                        13 => TimelineFilter::new().to(at),
                        14 => TimelineFilter::new().table(t.parse()?).to(at),
                        _ => TimelineFilter::new()
                            .actor(actor)
                            .from(at - chrono::Duration::days(1))
                            .to(at),
                    };
                    let window = ActivityWindow::for_filter(&filter, at);
                    let counts = tl.activity(&filter, &window).await?;
                    counts.iter().map(|(_, n)| *n as usize).sum()
                }
            };
            if warm < warmup {
                warm += 1;
            } else {
                times.push(started.elapsed());
                rows += n;
            }
        }
        times.sort();
        println!(
            "| {name} | {:.2} | {:.2} | {:.0} | {} |",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            rows as f64 / times.len() as f64,
            times.len()
        );
    }
    println!();
    Ok(())
}

/// Times the purge of the trail's oldest month; on a partitioned trail, then also the same
/// rows' purge on a plain trail of the first two months.
async fn retention(args: &Args, pool: &PgPool, partitioned: bool) -> Result<(), BoxError> {
    let spec = args.spec;
    let month = PartitionInterval::Month;
    let cutoff = month.next(month.floor(spec.transaction_start(1)));
    println!(
        "## Retention of the oldest month (changes captured before {})\n",
        cutoff.to_rfc3339()
    );
    println!(
        "| trail | changes in the trail | changes purged | transactions purged | what the purge did | time |"
    );
    println!("|---|---:|---:|---:|---|---:|");
    let label = if partitioned {
        "partitioned (monthly)"
    } else {
        "plain"
    };
    purge_month(pool, cutoff, partitioned, label).await?;
    if !partitioned {
        return Ok(());
    }
    // The same rows on a plain trail: transactions that end before the second month does.
    let end = month.next(cutoff);
    let last_ms = chrono::Duration::milliseconds(spec.changes_per_transaction() - 1);
    let mut plain = spec;
    plain.transactions = (1..=spec.transactions)
        .take_while(|g| spec.transaction_start(*g) + last_ms < end)
        .last()
        .unwrap_or(1);
    plain.changes = plain.transactions * spec.changes_per_transaction();
    let name = format!("{}_plain", args.database);
    let plain_pool = database(&name, true).await?;
    fill(&plain_pool, plain, false).await?;
    purge_month(&plain_pool, cutoff, false, "plain, first two months").await?;
    plain_pool.close().await;
    drop_database(&name).await?;
    println!();
    Ok(())
}

/// Purges the changes captured before `cutoff` as `threadline retention purge --execute`
/// does, and prints one row of the retention table.
async fn purge_month(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
    partitioned: bool,
    label: &str,
) -> Result<(), BoxError> {
    let install = InstallOptions::default();
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_changes")
        .fetch_one(pool)
        .await?;
    let before_cutoff = || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_changes WHERE captured_at < $1")
            .bind(cutoff)
            .fetch_one(pool)
    };
    let eligible = before_cutoff().await?;
    let policy = RetentionPolicy::keep_days(1)?.enabled(true);
    let options = PurgeOptions {
        cutoff: Some(cutoff),
        ..PurgeOptions::default()
    };
    eprintln!("purging {eligible} of {total} changes ({label})");
    let started = Instant::now();
    let (report, elapsed, what) = if partitioned {
        let report =
            threadline_sqlx::purge_partitions(pool, &install, &policy, &options, |_| {}).await?;
        let elapsed = started.elapsed();
        let retired: Vec<String> = report
            .partitions
            .iter()
            .map(|p| format!("{} {} ({} rows)", p.action, p.name, p.rows))
            .collect();
        let what = format!(
            "{}; {} changes deleted row by row",
            retired.join(", "),
            report.boundary_changes
        );
        if !report
            .partitions
            .iter()
            .any(|p| p.table == "audit_changes" && p.action == "drop")
        {
            return Err(format!("no partition of audit_changes was dropped: {what}").into());
        }
        (report.purge, elapsed, what)
    } else {
        let report = threadline_sqlx::purge_with_progress(pool, &install, &policy, &options, |p| {
            if p.batch % 250 == 0 {
                eprintln!(
                    "  batch {}: {} changes, {:.0} s",
                    p.batch,
                    p.total_changes,
                    started.elapsed().as_secs_f64()
                );
            }
        })
        .await?;
        let elapsed = started.elapsed();
        let what = format!(
            "{} batches of {} changes deleted row by row",
            report.batches, options.batch_size
        );
        (report, elapsed, what)
    };
    let left = before_cutoff().await?;
    if left != 0 || report.deleted_changes != eligible as u64 {
        return Err(format!(
            "{label}: {eligible} changes were eligible, {} deleted, {left} left",
            report.deleted_changes
        )
        .into());
    }
    println!(
        "| {label} | {total} | {} | {} | {what} | {:.2} s |",
        report.deleted_changes,
        report.deleted_transactions,
        elapsed.as_secs_f64()
    );
    Ok(())
}

async fn drop_database(name: &str) -> Result<(), BoxError> {
    let mut conn = admin()?.connect().await?;
    exec(
        &mut conn,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await?;
    conn.close().await?;
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

/// Server CPU time of a local backend so far, in microseconds (`/proc/<pid>/stat` utime +
/// stime at 100 ticks per second); `None` when the server is not on this machine.
fn backend_cpu_us(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10_000.0)
}

/// Runs `statement` for `seconds`, each time in its own transaction with the context a web
/// request sets (an actor and a fresh request id). Returns transactions per second and the
/// backend's CPU microseconds per transaction.
async fn measure(
    conn: &mut PgConnection,
    statement: &str,
    seconds: u64,
) -> Result<(f64, Option<f64>), BoxError> {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await?;
    let cpu_before = backend_cpu_us(pid);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let mut tx = begin_request(conn, n).await?;
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        n += 1;
    }
    let tps = n as f64 / started.elapsed().as_secs_f64();
    let cpu = cpu_before
        .zip(backend_cpu_us(pid))
        .map(|(before, after)| (after - before) / n as f64);
    Ok((tps, cpu))
}

/// One measurement of a variant: W1 and W3 throughput and CPU, index bytes per row after W3.
struct Sample {
    w1: (f64, Option<f64>),
    w3: (f64, Option<f64>),
    bytes: f64,
}

/// Installs Threadline on `pool` and creates the audited `posts` table.
async fn audited_posts(pool: &PgPool, conn: &mut PgConnection) -> Result<(), BoxError> {
    threadline_sqlx::install(pool, &InstallOptions::default()).await?;
    exec(conn, POSTS).await?;
    threadline_sqlx::audit_table(
        pool,
        &InstallOptions::default(),
        &"posts".parse()?,
        &TableCapture::default(),
    )
    .await?;
    Ok(())
}

/// Begins a transaction with the context of web request number `n`.
async fn begin_request(
    conn: &mut PgConnection,
    n: u64,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, BoxError> {
    let mut tx = conn.begin().await?;
    let ctx = AuditContext::for_actor(ActorRef::user("u1")?).with_request_id(format!("req-{n}"));
    tx.with_context(&ctx).await?;
    Ok(tx)
}

async fn capture_sample(args: &Args, setup: &[String]) -> Result<Sample, BoxError> {
    let pool = database(&args.database, true).await?;
    let mut conn = pool.acquire().await?.detach();
    audited_posts(&pool, &mut conn).await?;
    for sql in setup {
        exec(&mut conn, sql).await?;
    }
    exec(&mut conn, "SET synchronous_commit = off").await?;
    let w1 = measure(&mut conn, W1, args.seconds).await?;
    exec(
        &mut conn,
        "TRUNCATE audit_changes, audit_transactions, audit_actions",
    )
    .await?;
    let w3 = measure(&mut conn, W3, args.seconds).await?;
    exec(&mut conn, "VACUUM ANALYZE audit_changes").await?;
    let bytes = sqlx::query_scalar::<_, f64>(
        "SELECT pg_indexes_size('audit_changes')::float8 / greatest(count(*), 1) FROM audit_changes",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    pool.close().await;
    Ok(Sample { w1, w3, bytes })
}

/// WAL bytes (full-page images excluded) per captured row, by relation, over `txs`
/// transactions of `statement`, read back with `pg_walinspect` for our own transaction ids.
async fn wal_per_row(
    conn: &mut PgConnection,
    statement: &str,
    rows_per_tx: f64,
    txs: usize,
) -> Result<BTreeMap<String, f64>, BoxError> {
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    for n in 0..txs {
        let mut tx = begin_request(conn, n as u64).await?;
        let start: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .execute(&mut *tx)
            .await?;
        let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let by_relation: Vec<(String, i64)> = sqlx::query_as(
            r"SELECT coalesce(c.relname::text, r.resource_manager),
                     sum(r.record_length - r.fpi_length)::bigint
              FROM pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn()) AS r
              LEFT JOIN pg_class c
                ON c.relfilenode = (regexp_match(r.block_ref, 'rel \d+/\d+/(\d+)'))[1]::oid
              WHERE r.xid = ($2 % 4294967296)::text::xid
              GROUP BY 1",
        )
        .bind(start)
        .bind(xid)
        .fetch_all(&mut *conn)
        .await?;
        for (relation, bytes) in by_relation {
            *total.entry(relation).or_default() += bytes as f64;
        }
    }
    for bytes in total.values_mut() {
        *bytes /= rows_per_tx * txs as f64;
    }
    Ok(total)
}

/// Prints the WAL each relation adds per captured row, for W1 and W3 with every index.
async fn wal_breakdown(args: &Args) -> Result<(), BoxError> {
    let pool = database(&args.database, true).await?;
    let mut conn = pool.acquire().await?.detach();
    if exec(&mut conn, "CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        .await
        .is_err()
    {
        println!("(pg_walinspect is not available: no WAL breakdown)");
        return Ok(());
    }
    audited_posts(&pool, &mut conn).await?;
    wal_per_row(&mut conn, W3, 1000.0, 3).await?; // warm-up: first pages, sequences
    let w1 = wal_per_row(&mut conn, W1, 1.0, 200).await?;
    let w3 = wal_per_row(&mut conn, W3, 1000.0, 10).await?;
    conn.close().await?;
    pool.close().await;
    drop_database(&args.database).await?;

    println!("\n## WAL per captured row, by relation (all indexes; full-page images excluded)\n");
    println!("| relation | W1 bytes per row | W3 bytes per row |\n|---|---:|---:|");
    let mut relations: Vec<&String> = w1
        .keys()
        .chain(w3.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let size = |r: &String| w1.get(r).copied().unwrap_or(0.0);
    relations.sort_by(|a, b| size(b).total_cmp(&size(a)));
    for relation in relations {
        let get = |m: &BTreeMap<String, f64>| m.get(relation).copied().unwrap_or(0.0);
        println!("| {relation} | {:.0} | {:.0} |", get(&w1), get(&w3));
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn capture_cost(args: &Args) -> Result<(), BoxError> {
    let pool = database(&args.database, true).await?;
    threadline_sqlx::install(&pool, &InstallOptions::default()).await?;
    let indexes = secondary_indexes(&pool).await?;
    pool.close().await;
    // Each variant is the SQL run after install: none, dropping one index, an alternative.
    let mut variants: Vec<(String, Vec<String>)> = vec![("all indexes".to_owned(), Vec::new())];
    for index in &indexes {
        variants.push((
            format!("without {index}"),
            vec![format!("DROP INDEX {index}")],
        ));
    }
    variants.push((
        "captured_at index as (captured_at, id), as before".to_owned(),
        vec![
            "DROP INDEX audit_changes_captured_at_idx".to_owned(),
            "CREATE INDEX audit_changes_captured_at_idx ON audit_changes (captured_at, id)"
                .to_owned(),
        ],
    ));
    variants.push((
        "no secondary index".to_owned(),
        indexes.iter().map(|i| format!("DROP INDEX {i}")).collect(),
    ));

    // Rounds go over every variant in turn, so that load from other processes on the machine
    // hits all variants alike.
    let mut samples: Vec<Vec<Sample>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        for (i, (name, setup)) in variants.iter().enumerate() {
            let sample = capture_sample(args, setup).await?;
            eprintln!(
                "round {round}, {name}: W1 {:.0} tps, W3 {:.1} tps",
                sample.w1.0, sample.w3.0
            );
            samples[i].push(sample);
        }
    }
    drop_database(&args.database).await?;

    println!(
        "## Capture cost of each index (median of {} rounds x {} s per workload, synchronous_commit = off)\n",
        args.rounds, args.seconds
    );
    println!(
        "| variant | W1 tps | W1 backend CPU µs/tx | W3 tps | W3 backend CPU ms/tx | index bytes per row after W3 |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for ((name, _), samples) in variants.iter().zip(&samples) {
        let pick =
            |f: &dyn Fn(&Sample) -> Option<f64>| median(samples.iter().filter_map(f).collect());
        println!(
            "| {name} | {:.0} | {:.0} | {:.1} | {:.2} | {:.1} |",
            pick(&|s| Some(s.w1.0)),
            pick(&|s| s.w1.1),
            pick(&|s| Some(s.w3.0)),
            pick(&|s| s.w3.1.map(|us| us / 1000.0)),
            pick(&|s| Some(s.bytes)),
        );
    }
    wal_breakdown(args).await
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
