//! Request-path benchmark (issue 6, point 4): axum `POST` handlers that insert one row into an
//! unaudited table, one with a plain `pool.begin()`, one behind `ThreadlineLayer` with
//! `AuditedTx` (which applies the request's audit context to the transaction in the same round
//! trip as `BEGIN`). For comparison, a third route applies the context the two-step way
//! (`BEGIN`, then `with_context`) and a fourth runs the plain handler behind the layer (the
//! layer's own cost). `wrk` drives them over loopback, alternating the route order; the result
//! is the median of the per-round throughput ratios (route / plain), with the CPU time per
//! request of this process and of the PostgreSQL processes (read from `/proc`, Linux).
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
use clap::Parser;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use threadline_axum::{ActorRef, Audit, AuditedTx, Threadline, ThreadlineLayer};
use threadline_sqlx::TransactionExt;

const DATABASE: &str = "threadline_bench_request";
/// The routes (path, label), in the order of the result rows; the first is the baseline.
const ROUTES: [(&str, &str); 4] = [
    ("/plain", "plain"),
    ("/audited", "AuditedTx"),
    ("/two-step", "two-step"),
    ("/layer-only", "plain behind the layer"),
];

const INSERT: &str = "INSERT INTO notes (body) VALUES ('a note written by the benchmark')";

/// Per-round figures of one route.
#[derive(Clone, Default)]
struct Results {
    rps: Vec<f64>,
    ratio: Vec<f64>,
    app_us: Vec<f64>,
    db_us: Vec<f64>,
}

/// Request-path benchmark: plain `pool.begin()` against `ThreadlineLayer` + `AuditedTx`, driven
/// by wrk.
#[derive(Clone, Parser)]
#[command(name = "request-path")]
struct Options {
    /// Rounds; each runs every route once, in alternating order.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Seconds of wrk per route and round.
    #[arg(long, default_value_t = 4)]
    duration: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Connections in the application's pool.
    #[arg(long, default_value_t = 8)]
    pool: u32,
    /// The server; the benchmark creates its own database there.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
}

async fn plain(State(threadline): State<Threadline>) -> StatusCode {
    let result = async {
        let mut tx = threadline.pool().begin().await?;
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
async fn two_step(State(threadline): State<Threadline>, audit: Audit) -> StatusCode {
    let result = async {
        let mut tx = threadline.pool().begin().await?;
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

/// What one wrk run measured.
#[derive(Clone, Copy, Default)]
struct Run {
    /// Requests per second.
    rps: f64,
    /// Requests completed.
    requests: f64,
}

/// Runs wrk against one route (POST, via a Lua script file).
fn wrk(o: &Options, url: &str, seconds: u32) -> anyhow::Result<Run> {
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
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok());
    // "  123456 requests in 4.00s, ..."
    let requests = text
        .lines()
        .find_map(|l| l.split_once(" requests in ").map(|(n, _)| n.trim()))
        .and_then(|v| v.parse().ok());
    match (rps, requests) {
        (Some(rps), Some(requests)) => Ok(Run { rps, requests }),
        _ => bail!("no Requests/sec or request count in wrk output:\n{text}"),
    }
}

/// CPU time (user + system, in clock ticks) used so far by each of these processes, read from
/// `/proc/<pid>/stat` (Linux); processes that have gone are left out.
fn cpu_ticks(pids: &[u32]) -> Vec<(u32, u64)> {
    pids.iter()
        .filter_map(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name, which is in parentheses and may hold spaces:
            // utime and stime are fields 14 and 15, so the 12th and 13th after it.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split(' ').skip(11);
            let utime: u64 = fields.next()?.parse().ok()?;
            let stime: u64 = fields.next()?.parse().ok()?;
            Some((pid, utime + stime))
        })
        .collect()
}

/// CPU ticks used between two readings by the processes present in both (a process that
/// exits in between takes its time with it; one whose pid is reused is not counted).
fn ticks_between(before: &[(u32, u64)], after: &[(u32, u64)]) -> u64 {
    after
        .iter()
        .filter_map(|(pid, t1)| {
            let (_, t0) = before.iter().find(|(p, _)| p == pid)?;
            t1.checked_sub(*t0)
        })
        .sum()
}

/// The PostgreSQL server's processes on this machine (backends, WAL writer, checkpointer...),
/// found by their command name in `/proc`; empty when the server runs elsewhere.
fn postgres_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres")
        })
        .collect()
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, else Linux's 100).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
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
    let o = Options::parse();
    let admin: PgConnectOptions = o.database_url.parse().context("invalid --database-url")?;
    let pool = setup(&admin, o.pool).await?;
    let app = Router::new()
        .route("/plain", post(plain))
        .merge(
            Router::new()
                .route("/audited", post(audited))
                .route("/two-step", post(two_step))
                .route("/layer-only", post(plain))
                .layer(ThreadlineLayer::new(actor)),
        )
        .with_state(Threadline::new(pool.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let base = format!("http://{addr}");
    let run = |path: &str, seconds: u32| {
        let (o, url) = (o.clone(), format!("{base}{path}"));
        async move { tokio::task::spawn_blocking(move || wrk(&o, &url, seconds)).await? }
    };
    // Warm the paths up (connections, statement caches, table pages).
    for (path, _) in ROUTES {
        run(path, 2).await?;
    }
    let me = [std::process::id()];
    let tick_us = 1e6 / clock_ticks_per_second();
    let mut results = vec![Results::default(); ROUTES.len()];
    for round in 1..=o.rounds {
        // Alternate the order (ABC.., ..CBA) so that a drift in the machine's speed during a
        // round does not always favour the same route.
        let mut order: Vec<usize> = (0..ROUTES.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        let mut runs = vec![Run::default(); ROUTES.len()];
        let mut cpu = vec![(0.0, 0.0); ROUTES.len()];
        for i in order {
            let servers = postgres_pids();
            let (app0, db0) = (cpu_ticks(&me), cpu_ticks(&servers));
            runs[i] = run(ROUTES[i].0, o.duration).await?;
            let (app1, db1) = (cpu_ticks(&me), cpu_ticks(&servers));
            let per_request = |ticks: u64| ticks as f64 * tick_us / runs[i].requests;
            cpu[i] = (
                per_request(ticks_between(&app0, &app1)),
                per_request(ticks_between(&db0, &db1)),
            );
        }
        let line: Vec<String> = ROUTES
            .iter()
            .zip(&runs)
            .map(|((_, label), r)| format!("{label} {:.0} ({:.3})", r.rps, r.rps / runs[0].rps))
            .collect();
        eprintln!("round {round}: {}", line.join(", "));
        for (i, r) in results.iter_mut().enumerate() {
            r.rps.push(runs[i].rps);
            r.ratio.push(runs[i].rps / runs[0].rps);
            r.app_us.push(cpu[i].0);
            r.db_us.push(cpu[i].1);
        }
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&pool)
        .await?;
    println!(
        "{} connections, pool of {}, {} rounds of {} s (medians over rounds)\n",
        o.connections, o.pool, o.rounds, o.duration
    );
    println!("| route | req/s | / plain | per round | app CPU us/req | PostgreSQL CPU us/req |");
    println!("|---|---|---|---|---|---|");
    for ((_, label), r) in ROUTES.iter().zip(results) {
        let rounds: Vec<String> = r.ratio.iter().map(|x| format!("{x:.3}")).collect();
        println!(
            "| {label} | {:.0} | {:.3}x | {} | {:.0} | {:.0} |",
            median(r.rps),
            median(r.ratio),
            rounds.join(" "),
            median(r.app_us),
            median(r.db_us),
        );
    }
    println!("\n{rows} rows inserted in all.");
    pool.close().await;
    Ok(())
}
