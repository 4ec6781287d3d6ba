//! The same small blog API on axum and on actix-web, and a framework-neutral way to call it,
//! so that one test body checks both stacks end to end against a real PostgreSQL.
//!
//! Routes: `POST /posts` (writes through `AuditedTx` and commits), `POST /posts/rollback`
//! (writes and returns without committing), `POST /posts/{id}/publish` (`#[audited]`, 404
//! when the post does not exist). The actor comes from the `x-user-id` header. The handlers'
//! own statements are unnamed (`.persistent(false)`), so the same apps also run behind
//! PgBouncer in transaction mode ([`bouncer_pool`]).

use std::future::Future;
use std::pin::Pin;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use threadline_sqlx::{InstallOptions, Threadline};
use threadline_test_support::TestDb;

/// Every Rust snippet of the README compiles (run by `cargo test --doc -p threadline-tests`).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Every Rust snippet of the getting-started guide compiles (`.ci/step-getting-started.sh`
/// also builds and runs them as a new crate).
#[cfg(doctest)]
#[doc = include_str!("../../guides/getting-started.md")]
pub struct GettingStartedDoctests;

pub mod actix_app;
pub mod axum_app;

/// A request to send through a stack.
#[derive(Debug, Clone, Default)]
pub struct Req {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub json: Option<serde_json::Value>,
}

impl Req {
    /// A POST with a JSON body.
    pub fn post(path: impl Into<String>, json: serde_json::Value) -> Self {
        Self {
            method: "POST",
            path: path.into(),
            json: Some(json),
            ..Self::default()
        }
    }

    /// A GET without a body.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            ..Self::default()
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A response from a stack.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// Sends one request through a framework's full service stack.
pub type Sender = Box<dyn Fn(Req) -> Pin<Box<dyn Future<Output = Resp>>>>;

/// A web stack on a fresh database with the `posts` table audited.
#[allow(missing_debug_implementations)] // holds a boxed sender closure
pub struct Stack {
    /// The database.
    pub db: TestDb,
    /// The stack's name, for messages.
    pub name: &'static str,
    send: Sender,
}

impl Stack {
    /// Sends a request.
    pub async fn send(&self, req: Req) -> Resp {
        (self.send)(req).await
    }

    /// Closes the pool while the runtime can still run the tasks that return connections
    /// (dropping `TestDb` blocks, which would stall a single-threaded runtime).
    pub async fn close(self) {
        self.db.pool.close().await;
    }
}

/// A fresh database with Threadline installed and `posts` audited.
pub async fn blog_db() -> TestDb {
    blog_db_with(&InstallOptions::default()).await
}

/// A fresh database with `posts` audited by an install made with `install` (its schema is
/// the only one that holds audit tables).
pub async fn blog_db_with(install: &InstallOptions) -> TestDb {
    let db = TestDb::empty().await;
    threadline_sqlx::install(&db.pool, install)
        .await
        .expect("install");
    db.exec(
        "CREATE TABLE posts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                             title text NOT NULL, published boolean NOT NULL DEFAULT false)",
    )
    .await;
    threadline_sqlx::audit_table(
        &db.pool,
        install,
        &"posts".parse().expect("table name"),
        &threadline_sqlx::TableCapture::default(),
    )
    .await
    .expect("audit posts");
    db
}

/// A pool to `db` through PgBouncer in transaction mode (`bash .ci/setup-pgbouncer.sh`;
/// `PGBOUNCER_URL` overrides the address), with no statement cache.
pub async fn bouncer_pool(db: &TestDb) -> sqlx::PgPool {
    let base = std::env::var("PGBOUNCER_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6432/postgres".to_owned());
    let options: PgConnectOptions = base.parse().expect("valid PGBOUNCER_URL");
    PgPoolOptions::new()
        .max_connections(8)
        .connect_with(options.database(&db.name).statement_cache_capacity(0))
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach PgBouncer ({e}); run `bash .ci/setup-pgbouncer.sh`")
        })
}

/// The axum stack.
pub async fn axum_stack() -> Stack {
    let db = blog_db().await;
    let send = axum_app::sender(Threadline::new(db.pool.clone()));
    Stack {
        db,
        name: "axum",
        send,
    }
}

/// The actix-web stack (run it on actix's runtime: `#[actix_web::test]`).
pub async fn actix_stack() -> Stack {
    let db = blog_db().await;
    let send = actix_app::sender(Threadline::new(db.pool.clone())).await;
    Stack {
        db,
        name: "actix",
        send,
    }
}

/// A captured change with its transaction's context, as the tests compare it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Captured {
    /// `audit_transactions.id`.
    pub transaction_id: i64,
    /// `insert`, `update`, `delete`.
    pub op: String,
    /// The row's key.
    pub table_pk: serde_json::Value,
    /// The row after the change.
    pub data_after: Option<serde_json::Value>,
    /// The actor.
    pub actor_ref: Option<serde_json::Value>,
    /// The request id.
    pub request_id: Option<String>,
    /// The correlation id.
    pub correlation_id: Option<String>,
}

/// Every captured change of `posts`, oldest first.
pub async fn captured(db: &TestDb) -> Vec<Captured> {
    sqlx::query_as(
        "SELECT c.transaction_id, c.op, c.table_pk, c.data_after, t.actor_ref, t.request_id,
                t.correlation_id
         FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id
         WHERE c.table_name = 'posts' ORDER BY c.id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("query audit_changes")
}

/// Runs each named scenario (`async fn(&Stack)`) on every web stack, as one test per stack:
/// `mod <scenario> { fn axum(); fn actix(); }`.
#[macro_export]
macro_rules! on_every_stack {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn axum() {
                let stack = $crate::axum_stack().await;
                super::$scenario(&stack).await;
                stack.close().await;
            }

            #[actix_web::test]
            async fn actix() {
                let stack = $crate::actix_stack().await;
                super::$scenario(&stack).await;
                stack.close().await;
            }
        }
    )*};
}

/// Polls all futures concurrently on the current task (no spawning, so `!Send` stacks work).
pub async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut pending: Vec<_> = futures.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(i, fut)| match fut.as_mut().poll(cx) {
            std::task::Poll::Ready(out) => {
                outputs[*i] = Some(out);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}
