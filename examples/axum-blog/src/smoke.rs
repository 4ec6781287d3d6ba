//! `--smoke`: serve on a free port, send the demo requests over real TCP, print the trail.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::Value;
use sqlx::PgPool;
use threadline_sqlx::{Page, Threadline, TimelineFilter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{DemoRequest, app, demo_requests};

type BoxError = Box<dyn std::error::Error>;

/// Runs the smoke test; an error means the demo is broken.
pub(crate) async fn run(pool: PgPool) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = app::router(pool.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let slug = format!("smoke-{run_id}");
    let correlation = format!("smoke-{run_id}");
    let mut requests = demo_requests(&slug);
    for request in &mut requests {
        request
            .headers
            .retain(|(name, _)| *name != "x-correlation-id");
        request
            .headers
            .push(("x-correlation-id", correlation.clone()));
    }
    let expected = [201, 200, 200];
    let mut history = Value::Null;
    for (request, want) in requests.iter().zip(expected) {
        println!("$ {}", request.curl(&format!("http://{addr}")));
        let (status, body) = send(addr, request).await?;
        println!("{status} {body}\n");
        if status != want {
            return Err(format!("{}: expected {want}, got {status}: {body}", request.what).into());
        }
        history = serde_json::from_str(&body).unwrap_or_default();
    }
    server.abort();

    let changes = history["changes"].as_array().map(Vec::len).unwrap_or(0);
    let alice = serde_json::json!({"type": "user", "id": "alice"});
    let trail = Threadline::new(pool.clone())
        .timeline(
            &TimelineFilter::new().correlation_id(correlation.clone()),
            Page::first(),
        )
        .await?;
    print_trail(&pool, &trail.items, &correlation).await?;
    let all_alice = trail.items.len() == 2 && changes == 2;
    if !all_alice {
        return Err(format!(
            "expected 2 captured changes (insert, publish), got {} in the timeline and {changes} in the history",
            trail.items.len()
        )
        .into());
    }
    let actors: Vec<Value> = sqlx::query_scalar(
        "SELECT t.actor_ref FROM audit_transactions t WHERE t.correlation_id = $1",
    )
    .bind(&correlation)
    .fetch_all(&pool)
    .await?;
    if actors.iter().any(|a| *a != alice) {
        return Err(format!("changes not attributed to alice: {actors:?}").into());
    }
    println!("smoke: ok");
    Ok(())
}

/// A minimal HTTP/1.1 client: one request per connection.
async fn send(addr: SocketAddr, request: &DemoRequest) -> Result<(u16, String), BoxError> {
    let body = request.body.as_deref().unwrap_or("");
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        request.method,
        request.path,
        body.len()
    );
    if request.body.is_some() {
        head.push_str("content-type: application/json\r\n");
    }
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("{head}\r\n{body}").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err("unexpected chunked response".into());
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed status line")?;
    Ok((status, body.to_owned()))
}

async fn print_trail(
    pool: &PgPool,
    changes: &[threadline_sqlx::AuditChange],
    correlation: &str,
) -> Result<(), BoxError> {
    println!("Audit trail (correlation id {correlation}), oldest first:");
    let request_ids: HashMap<i64, Option<String>> =
        sqlx::query_as("SELECT id, request_id FROM audit_transactions WHERE correlation_id = $1")
            .bind(correlation)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let rows: Vec<Vec<String>> = changes
        .iter()
        .rev()
        .map(|c| {
            vec![
                c.captured_at.format("%H:%M:%S%.3f").to_string(),
                c.op.to_string(),
                c.table_name.clone(),
                c.table_pk.to_string(),
                c.actor_ref
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default(),
                request_ids
                    .get(&c.transaction_id)
                    .cloned()
                    .flatten()
                    .unwrap_or_default(),
                c.changed_fields.clone().unwrap_or_default().join(","),
            ]
        })
        .collect();
    print_table(
        &[
            "captured_at",
            "op",
            "table",
            "key",
            "actor",
            "request_id",
            "changed",
        ],
        &rows,
    );
    println!("\nActions:");
    let rows: Vec<Vec<String>> = sqlx::query_scalar(
        "SELECT ARRAY[name, status, actor_ref::text, COALESCE(request_id, ''),
                      COALESCE(transaction_id::text, '')]
         FROM audit_actions WHERE correlation_id = $1 ORDER BY id",
    )
    .bind(correlation)
    .fetch_all(pool)
    .await?;
    print_table(
        &["action", "status", "actor", "request_id", "transaction"],
        &rows,
    );
    Ok(())
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join(" | ").trim_end());
    };
    line(header.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("{}", rule.join("-+-"));
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
