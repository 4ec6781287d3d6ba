//! `--smoke`: serve on a free port, send the demo requests over real TCP, check the trail.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use serde_json::{Value, json};
use sqlx::PgPool;

type BoxError = Box<dyn std::error::Error>;

/// One demo request: method, path, the `x-user` header, a JSON body, the expected status.
struct Step {
    method: &'static str,
    path: String,
    user: &'static str,
    body: Option<&'static str>,
    status: u16,
}

/// Runs the smoke test; an error means the demo is broken.
pub(crate) async fn run(pool: PgPool) -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = crate::server(pool.clone(), listener)?;
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let slug = format!("smoke-{run_id}");
    let steps = [
        Step {
            method: "PUT",
            path: format!("/posts/{slug}"),
            user: "alice",
            body: Some(r#"{"title":"Hello"}"#),
            status: 200,
        },
        Step {
            method: "POST",
            path: format!("/posts/{slug}/publish"),
            user: "alice",
            body: None,
            status: 200,
        },
        Step {
            method: "GET",
            path: format!("/admin/posts/{slug}/history"),
            user: "admin",
            body: None,
            status: 200,
        },
    ];
    let mut history = Value::Null;
    for step in steps {
        println!("$ {} {} (x-user: {})", step.method, step.path, step.user);
        let (status, body) =
            actix_web::rt::task::spawn_blocking(move || send(addr, &step)).await??;
        println!("{status} {body}\n");
        history = serde_json::from_str(&body).unwrap_or_default();
    }
    handle.stop(true).await;

    // The history holds the insert and the publish, both attributed to alice.
    let alice = json!({"type": "user", "id": "alice"});
    let changes = history.as_array().cloned().unwrap_or_default();
    let ops: Vec<&str> = changes.iter().filter_map(|c| c["op"].as_str()).collect();
    if changes.len() != 2 || changes.iter().any(|c| c["actor_ref"] != alice) {
        return Err(format!("expected 2 changes by alice, got {ops:?}: {history}").into());
    }
    // `#[audited]` recorded the publish action, linked to its transaction.
    let actions: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT a.name, a.status, a.transaction_id FROM audit_actions a
         JOIN audit_transactions t ON t.id = a.transaction_id
         JOIN audit_changes c ON c.transaction_id = t.id
         WHERE c.table_name = 'posts' AND c.data_after ->> 'slug' = $1 AND a.actor_ref = $2",
    )
    .bind(&slug)
    .bind(&alice)
    .fetch_all(&pool)
    .await?;
    println!("actions: {actions:?}");
    if actions.len() != 1 || actions[0].0 != "post.published" || actions[0].1 != "ok" {
        return Err(format!("expected one linked post.published action, got {actions:?}").into());
    }
    println!("smoke: ok");
    Ok(())
}

/// A minimal blocking HTTP/1.1 client: one request per connection; fails on an unexpected
/// status.
fn send(addr: SocketAddr, step: &Step) -> Result<(u16, String), String> {
    let body = step.body.unwrap_or("");
    let mut request = format!(
        "{} {} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\nx-user: {}\r\ncontent-length: {}\r\n",
        step.method,
        step.path,
        step.user,
        body.len()
    );
    if step.body.is_some() {
        request.push_str("content-type: application/json\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    let io = |e: std::io::Error| format!("{} {}: {e}", step.method, step.path);
    let mut stream = TcpStream::connect(addr).map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(io)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed status line")?;
    if status != step.status {
        return Err(format!(
            "{} {}: expected {}, got {status}: {body}",
            step.method, step.path, step.status
        ));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err("unexpected chunked response".to_owned());
    }
    Ok((status, body.to_owned()))
}
