//! A background job that keeps the audit context of the request that enqueued it.
//!
//! A "request" (alice signs up) writes a user row and enqueues a welcome email. The payload
//! carries a serialized [`JobContext`]; a tokio task plays the worker, restores the context
//! with `begin_with_context`, and writes the email row. The trail then shows both writes under
//! one correlation id and one trace id: the first by `{"type":"user","id":"alice"}`, the second
//! by `{"type":"job","id":"mailer"}` with the job id as its request id.
//!
//! `cargo run -p background-job` against `DATABASE_URL` (default
//! `postgres://localhost/threadline_demo`); it exits non-zero if the trail is wrong.

use serde::{Deserialize, Serialize};
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};
use threadline_sqlx::{
    ActorRef, AuditContext, InstallOptions, JobContext, PoolExt, TableCapture, TraceId,
};

/// The request's W3C trace id (in a web handler, `Audit`'s `trace_id`, from `traceparent`).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What goes on the queue: the work plus the audit context to restore.
#[derive(Debug, Serialize, Deserialize)]
struct WelcomeEmail {
    user_id: i64,
    audit: JobContext,
}

async fn prepare(url: &str) -> Result<PgPool, BoxError> {
    if !Postgres::database_exists(url).await? {
        Postgres::create_database(url).await?;
    }
    let pool = PgPool::connect(url).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS signups (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
         CREATE TABLE IF NOT EXISTS emails (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             signup_id bigint NOT NULL REFERENCES signups (id), kind text NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let install = InstallOptions::default();
    threadline_sqlx::install(&pool, &install).await?;
    for table in ["signups", "emails"] {
        threadline_sqlx::audit_table(&pool, &install, &table.parse()?, &TableCapture::default())
            .await?;
    }
    Ok(pool)
}

/// One captured change with its transaction's context.
#[derive(sqlx::FromRow)]
struct TrailRow {
    table_name: String,
    op: String,
    actor_ref: serde_json::Value,
    request_id: Option<String>,
    source: Option<String>,
    trace_id: Option<String>,
}

/// The request: writes as alice, then enqueues the job with the request's correlation id.
async fn sign_up(pool: &PgPool, correlation_id: &str) -> Result<String, BoxError> {
    let request = AuditContext::for_actor(ActorRef::user("alice")?)
        .with_request_id(format!("{correlation_id}-req"))
        .with_correlation_id(correlation_id)
        .with_trace_id(TRACE_ID.parse::<TraceId>()?);
    let mut tx = pool.begin_with_context(&request).await?;
    let user_id: i64 =
        sqlx::query_scalar("INSERT INTO signups (name) VALUES ('alice') RETURNING id")
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let mut audit = JobContext::new(ActorRef::job("mailer")?)
        .with_correlation_id(correlation_id)
        .with_job_id(format!("welcome-{user_id}"));
    audit.trace_id = request.trace_id;
    let job = WelcomeEmail { user_id, audit };
    Ok(serde_json::to_string(&job)?)
}

/// The worker: restores the job's context and writes under it.
async fn work(pool: PgPool, payload: String) -> Result<(), BoxError> {
    let job: WelcomeEmail = serde_json::from_str(&payload)?;
    let mut tx = pool.begin_with_context(&job.audit.to_context()).await?;
    sqlx::query("INSERT INTO emails (signup_id, kind) VALUES ($1, 'welcome')")
        .bind(job.user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://localhost/threadline_demo".to_owned());
    let pool = prepare(&url)
        .await
        .map_err(|e| format!("cannot prepare the database at {url}: {e}"))?;
    let correlation_id = format!(
        "signup-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    );

    let (queue, mut jobs) = tokio::sync::mpsc::channel::<String>(8);
    let worker = tokio::spawn({
        let pool = pool.clone();
        async move {
            while let Some(payload) = jobs.recv().await {
                work(pool.clone(), payload).await?;
            }
            Ok::<_, BoxError>(())
        }
    });
    let payload = sign_up(&pool, &correlation_id).await?;
    println!("enqueued: {payload}");
    queue.send(payload).await?;
    drop(queue);
    worker.await??;

    let trail: Vec<TrailRow> = sqlx::query_as(
        "SELECT c.table_name, c.op, t.actor_ref, t.request_id, t.source, t.trace_id
         FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id
         WHERE t.correlation_id = $1 ORDER BY c.id",
    )
    .bind(&correlation_id)
    .fetch_all(&pool)
    .await?;
    println!("\nchanges with correlation id {correlation_id}:");
    for row in &trail {
        println!(
            "  {:<8} {:<7} actor={} request_id={} source={} trace_id={}",
            row.table_name,
            row.op,
            row.actor_ref,
            row.request_id.as_deref().unwrap_or("-"),
            row.source.as_deref().unwrap_or("-"),
            row.trace_id.as_deref().unwrap_or("-")
        );
    }
    let actors = trail
        .iter()
        .map(|row| ActorRef::from_value(&row.actor_ref))
        .collect::<Result<Vec<_>, _>>()?;
    let expected = [ActorRef::user("alice")?, ActorRef::job("mailer")?];
    if actors != expected {
        return Err(format!("unexpected trail: {actors:?}, expected {expected:?}").into());
    }
    if let Some(row) = trail
        .iter()
        .find(|r| r.trace_id.as_deref() != Some(TRACE_ID))
    {
        return Err(format!("the {} change lost the trace id", row.table_name).into());
    }
    println!(
        "ok: the job's write kept the request's correlation id and trace id under the job actor"
    );
    Ok(())
}
