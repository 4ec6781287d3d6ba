//! Request-path benchmark (issue 6, point 4): two axum `POST` handlers that insert one row into
//! an unaudited table, one with a plain `pool.begin()`, one behind `ThreadlineLayer` with
//! `AuditedTx` (which applies the request's audit context to the transaction in the same round
//! trip as `BEGIN`). A third route applies the context the two-step way (`BEGIN`, then
//! `with_context`) for comparison. `wrk` drives them over loopback, alternating the routes;
//! the result is the median of the per-round throughput ratios (route / plain).
//!
//! ```text
//! cargo run --release -p threadline-bench -- [--rounds 10] [--duration 4] [--connections 16]
//!     [--threads 2] [--pool 8] [--database-url postgres://postgres@127.0.0.1:5432/postgres]
//! ```
//! Needs `wrk` on `PATH` (Debian: `apt-get install wrk`).

use std::process::Command;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, request::Parts};
use axum::routing::post;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use threadline_axum::{ActorRef, Audit, AuditedTx, ThreadlineLayer};
use threadline_sqlx::TransactionExt;

const DATABASE: &str = "threadline_bench_request";
/// The routes, in the order of the result columns.
const ROUTES: [&str; 3] = ["/plain", "/audited", "/two-step"];
const INSERT: &str = "INSERT INTO notes (body) VALUES ('a note written by the benchmark')";

#[derive(Clone)]
struct Options {
    rounds: usize,
    duration: u32,
    connections: u32,
    threads: u32,
    pool: u32,
    database_url: String,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        rounds: 10,
        duration: 4,
        connections: 16,
        threads: 2,
        pool: 8,
        database_url: std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--rounds" => o.rounds = value()?.parse()?,
            "--duration" => o.duration = value()?.parse()?,
            "--connections" => o.connections = value()?.parse()?,
            "--threads" => o.threads = value()?.parse()?,
            "--pool" => o.pool = value()?.parse()?,
            "--database-url" => o.database_url = value()?,
            other => bail!(
                "unknown option {other}; options: --rounds --duration --connections --threads --pool --database-url"
            ),
        }
    }
    Ok(o)
}

async fn plain(State(pool): State<PgPool>) -> StatusCode {
    let result = async {
        let mut tx = pool.begin().await?;
        sqlx::query(INSERT).execute(&mut *tx).await?;
        tx.commit().await
    }
    .await;
    status(result)
}

async fn audited(mut tx: AuditedTx) -> StatusCode {
    let result = async {
        sqlx::query(INSERT).execute(&mut *tx).await?;
        tx.commit().await
    }
    .await;
    status(result)
}

/// The context applied the two-step way (`BEGIN`, then `with_context`), for comparison.
async fn two_step(State(pool): State<PgPool>, audit: Audit) -> StatusCode {
    let result = async {
        let mut tx = pool.begin().await?;
        tx.with_context(&audit)
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        sqlx::query(INSERT).execute(&mut *tx).await?;
        tx.commit().await
    }
    .await;
    status(result)
}

fn status(result: Result<(), sqlx::Error>) -> StatusCode {
    match result {
        Ok(()) => StatusCode::CREATED,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn actor(_: &Parts) -> Option<ActorRef> {
    ActorRef::user("u1").ok()
}

/// Recreates the benchmark database with Threadline installed and an unaudited `notes` table.
async fn setup(admin: &PgConnectOptions, pool_size: u32) -> anyhow::Result<PgPool> {
    let mut conn = admin
        .connect()
        .await
        .context("cannot connect to PostgreSQL")?;
    sqlx::query("DROP DATABASE IF EXISTS threadline_bench_request WITH (FORCE)")
        .execute(&mut conn)
        .await?;
    sqlx::query("CREATE DATABASE threadline_bench_request")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .min_connections(pool_size)
        .connect_with(admin.clone().database(DATABASE))
        .await?;
    threadline_sqlx::install(&pool, &threadline_sqlx::InstallOptions::default()).await?;
    sqlx::raw_sql(
        "CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await?;
    Ok(pool)
}

/// Runs wrk against one route (POST, via a Lua script file); returns requests per second.
fn wrk(o: &Options, url: &str, seconds: u32) -> anyhow::Result<f64> {
    let script = std::env::temp_dir().join(format!("threadline-bench-{}.lua", std::process::id()));
    std::fs::write(&script, "wrk.method = \"POST\"\n")?;
    let out = Command::new("wrk")
        .args([
            "-t",
            &o.threads.to_string(),
            "-c",
            &o.connections.to_string(),
        ])
        .args(["-d", &format!("{seconds}s"), "-s"])
        .arg(&script)
        .arg(url)
        .output()
        .context("cannot run wrk; install it (Debian: apt-get install wrk)")?;
    std::fs::remove_file(&script).ok();
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        bail!("{url} answered errors:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let admin: PgConnectOptions = o.database_url.parse().context("invalid --database-url")?;
    let pool = setup(&admin, o.pool).await?;
    let app = Router::new()
        .route("/plain", post(plain))
        .merge(
            Router::new()
                .route("/audited", post(audited))
                .route("/two-step", post(two_step))
                .layer(ThreadlineLayer::new(actor)),
        )
        .with_state(pool.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let base = format!("http://{addr}");
    let run = |path: &str, seconds: u32| {
        let (o, url) = (o.clone(), format!("{base}{path}"));
        async move { tokio::task::spawn_blocking(move || wrk(&o, &url, seconds)).await? }
    };
    // Warm the paths up (connections, statement caches, table pages).
    for path in ROUTES {
        run(path, 2).await?;
    }
    let (mut ratios, mut two_ratios) = (Vec::new(), Vec::new());
    let (mut plains, mut auditeds, mut twos) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=o.rounds {
        // Alternate the order (ABC, CBA, ...) so that a drift in the machine's speed during a
        // round does not always favour the same route.
        let order = if round % 2 == 1 { [0, 1, 2] } else { [2, 1, 0] };
        let mut rps = [0.0; 3];
        for i in order {
            rps[i] = run(ROUTES[i], o.duration).await?;
        }
        let [p, a, t] = rps;
        eprintln!(
            "round {round}: plain {p:.0} req/s, AuditedTx {a:.0} req/s ({:.3}), two-step {t:.0} req/s ({:.3})",
            a / p,
            t / p
        );
        ratios.push(a / p);
        two_ratios.push(t / p);
        plains.push(p);
        auditeds.push(a);
        twos.push(t);
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&pool)
        .await?;
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "| connections | pool | plain req/s | AuditedTx req/s | AuditedTx / plain (median) | rounds | two-step req/s | two-step / plain (median) | rounds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.0} | {:.0} | {:.3}x | {} | {:.0} | {:.3}x | {} |",
        o.connections,
        o.pool,
        median(plains),
        median(auditeds),
        median(ratios.clone()),
        list(&ratios),
        median(twos),
        median(two_ratios.clone()),
        list(&two_ratios),
    );
    println!("\n{rows} rows inserted in all.");
    pool.close().await;
    Ok(())
}
