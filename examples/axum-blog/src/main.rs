//! Threadline's flagship demo: a JSON blog API on axum whose every write lands in the audit
//! trail with who did it, in which request, and why.
//!
//! `cargo run -p axum-blog` serves on <http://localhost:3000> (`PORT` to change) against
//! `DATABASE_URL` (default `postgres://localhost/threadline_demo`, created when missing).
//! `cargo run -p axum-blog -- --smoke` starts the server on a free port, sends the three
//! demo requests itself, prints the audit trail and exits 0 when it looks right.

mod admin;
mod app;
mod audit_ui;
mod db;
mod smoke;

use std::net::SocketAddr;
use std::process::ExitCode;

/// One of the demo requests printed as `curl` commands and sent by `--smoke`.
#[derive(Debug)]
pub struct DemoRequest {
    /// What it shows.
    pub what: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Path.
    pub path: String,
    /// Headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Option<String>,
}

impl DemoRequest {
    /// The request as a ready-to-paste `curl` command.
    pub fn curl(&self, base: &str) -> String {
        let mut cmd = format!("curl -s -X {} {base}{}", self.method, self.path);
        for (name, value) in &self.headers {
            cmd.push_str(&format!(" -H '{name}: {value}'"));
        }
        if let Some(body) = &self.body {
            cmd.push_str(&format!(" -H 'content-type: application/json' -d '{body}'"));
        }
        cmd
    }
}

/// Alice writes a post, publishes it (an `#[audited]` action), and the admin reads its history.
pub fn demo_requests(slug: &str) -> [DemoRequest; 3] {
    let alice = || ("x-user", "alice".to_owned());
    [
        DemoRequest {
            what: "alice writes a post",
            method: "PUT",
            path: format!("/posts/{slug}"),
            headers: vec![alice()],
            body: Some(
                r#"{"title":"Hello, Threadline","body":"Who changed what, when, and why."}"#.into(),
            ),
        },
        DemoRequest {
            what: "alice publishes it (recorded as the post.published action)",
            method: "POST",
            path: format!("/posts/{slug}/publish"),
            headers: vec![alice(), ("x-correlation-id", "launch-1".to_owned())],
            body: None,
        },
        DemoRequest {
            what: "the admin reads the post's history",
            method: "GET",
            path: format!("/admin/posts/{slug}/history"),
            headers: vec![("x-user", "admin".to_owned())],
            body: None,
        },
    ]
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axum-blog: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut smoke = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--smoke" => smoke = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: axum-blog [--smoke] (env DATABASE_URL, PORT)"
                )
                .into());
            }
        }
    }
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| db::DEFAULT_URL.to_owned());
    let pool = db::prepare(&url).await.map_err(|e| {
        format!("cannot prepare the database at {url}: {e}\nIs PostgreSQL running? Point DATABASE_URL at a server where you may create databases.")
    })?;
    if smoke {
        return smoke::run(pool).await;
    }
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT={p:?} is not a port number"))?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}; set PORT to a free port"))?;
    let base = format!("http://localhost:{port}");
    println!("axum-blog listening on {base} (database {url})\n");
    println!(
        "Audit explorer: {base}{} (admin only: sign in at {base}{} as `admin`)\n\nTry:\n",
        audit_ui::PATH,
        audit_ui::LOGIN_PATH
    );
    for request in demo_requests("hello-threadline") {
        println!("# {}\n{}\n", request.what, request.curl(&base));
    }
    println!(
        "More: GET /posts, POST /posts/{{slug}}/comments, GET /admin/timeline?actor=user:alice, GET /admin/posts/{{slug}}/as_of?at=<RFC 3339>"
    );
    axum::serve(
        listener,
        app::router(pool).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
