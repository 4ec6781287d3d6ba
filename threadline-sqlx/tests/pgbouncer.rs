//! Threadline behind a real PgBouncer in transaction pooling mode (`default_pool_size = 4`).
//!
//! Needs PgBouncer on 127.0.0.1:6432 routing every database to the test server: run
//! `bash .ci/setup-pgbouncer.sh` (CI does). `PGBOUNCER_URL` overrides the address.
//!
//! sqlx is configured as PgBouncer without prepared-statement support needs: no statement
//! cache, every parameterized statement unnamed (`.persistent(false)`) and inside a
//! transaction. Threadline's context statements use the simple query protocol, so they need
//! no setting at all.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};
use threadline_sqlx::{
    ActorRef, AuditContext, ConnectionExt, InstallOptions, TableCapture, TransactionExt,
};
use threadline_test_support::{TestDb, backend_pid};

const CLIENTS: usize = 32;
const TRANSACTIONS: usize = 10_000;

fn bouncer_options(db: &TestDb) -> PgConnectOptions {
    let base = std::env::var("PGBOUNCER_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6432/postgres".to_owned());
    let options: PgConnectOptions = base.parse().expect("valid PGBOUNCER_URL");
    options.database(&db.name).statement_cache_capacity(0)
}

async fn connect_bouncer(db: &TestDb) -> PgConnection {
    bouncer_options(db).connect().await.unwrap_or_else(|e| {
        panic!("cannot reach PgBouncer ({e}); start it with `bash .ci/setup-pgbouncer.sh`")
    })
}

async fn setup() -> TestDb {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE items (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            client int NOT NULL,
            seq int NOT NULL,
            with_ctx boolean NOT NULL,
            pid int NOT NULL DEFAULT pg_backend_pid(),
            bumps int NOT NULL DEFAULT 0
        )",
    )
    .await;
    threadline_sqlx::audit_table(
        &db.pool,
        &InstallOptions::default(),
        &"items".parse().expect("name"),
        &TableCapture::default(),
    )
    .await
    .expect("audit items");
    db
}

/// Client `client` runs its share of the transactions; every fourth sets no context at all,
/// the others alternate between `BEGIN` + `with_context` and the pipelined `BEGIN`.
async fn run_client(db: &TestDb, client: usize) -> (usize, usize) {
    let mut conn = connect_bouncer(db).await;
    let actor = ActorRef::user(format!("client-{client}")).expect("actor");
    let share = TRANSACTIONS / CLIENTS + usize::from(client < TRANSACTIONS % CLIENTS);
    let (mut inserts, mut updates) = (0, 0);
    for seq in 0..share {
        let with_ctx = seq % 4 != 3;
        let ctx =
            AuditContext::for_actor(actor.clone()).with_request_id(format!("c{client}-t{seq}"));
        let mut tx = if with_ctx && seq % 2 == 0 {
            // The one-round-trip form, as `PoolExt::begin_with_context` and `AuditedTx` send it.
            conn.begin_with_context(&ctx)
                .await
                .expect("begin with context")
        } else {
            let mut tx = conn.begin().await.expect("begin");
            if with_ctx {
                tx.with_context(&ctx).await.expect("context");
            }
            tx
        };
        sqlx::query("INSERT INTO items (client, seq, with_ctx) VALUES ($1, $2, $3)")
            .persistent(false)
            .bind(client as i32)
            .bind(seq as i32)
            .bind(with_ctx)
            .execute(&mut *tx)
            .await
            .expect("insert");
        inserts += 1;
        if seq % 3 == 0 && seq > 0 {
            // Touch this client's previous row, written in an earlier transaction.
            let done = sqlx::query(
                "UPDATE items SET bumps = bumps + 1, seq = $2, with_ctx = $3
                 WHERE id = (SELECT max(id) FROM items WHERE client = $1 AND seq < $2)",
            )
            .persistent(false)
            .bind(client as i32)
            .bind(seq as i32)
            .bind(with_ctx)
            .execute(&mut *tx)
            .await
            .expect("update");
            updates += done.rows_affected() as usize;
        }
        tx.commit().await.expect("commit");
    }
    (inserts, updates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_clients_keep_their_own_actor_through_transaction_pooling() {
    let db = std::sync::Arc::new(setup().await);
    let started = std::time::Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let db = db.clone();
            tokio::spawn(async move { run_client(&db, client).await })
        })
        .collect();
    let (mut inserts, mut updates) = (0, 0);
    for handle in handles {
        let (i, u) = handle.await.expect("client task");
        inserts += i;
        updates += u;
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{TRANSACTIONS} transactions from {CLIENTS} clients through PgBouncer in {elapsed:.2?} ({:.0} tx/s), {inserts} inserts, {updates} updates",
        TRANSACTIONS as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(inserts, TRANSACTIONS);

    let pool = &db.pool;
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_changes")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(
        changes as usize,
        inserts + updates,
        "one change per written row"
    );

    // Each change was written by the client named in its row image; with context, the
    // transaction carries exactly that client's actor and request id, without it nothing.
    let wrong: Vec<(
        i64,
        serde_json::Value,
        Option<serde_json::Value>,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT c.id, c.data_after, t.actor_ref, t.request_id
             FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id
             WHERE CASE WHEN (c.data_after ->> 'with_ctx')::boolean
                 THEN t.actor_ref IS DISTINCT FROM jsonb_build_object(
                          'type', 'user', 'id', 'client-' || (c.data_after ->> 'client'))
                   OR t.request_id IS DISTINCT FROM
                          'c' || (c.data_after ->> 'client') || '-t' || (c.data_after ->> 'seq')
                 ELSE t.actor_ref IS NOT NULL OR t.request_id IS NOT NULL END
             LIMIT 5",
    )
    .fetch_all(pool)
    .await
    .expect("attribution query");
    assert!(wrong.is_empty(), "misattributed changes: {wrong:?}");

    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_changes c
         WHERE NOT EXISTS (SELECT 1 FROM audit_transactions t WHERE t.id = c.transaction_id)",
    )
    .fetch_one(pool)
    .await
    .expect("orphans");
    assert_eq!(orphans, 0);

    // The pooling really happened: 32 clients shared at most 4 server connections, and a
    // transaction without context often ran right after another client's transaction with
    // context on the same server connection (ordered by txid per backend).
    let pids: Vec<i32> = sqlx::query_scalar("SELECT DISTINCT pid FROM items")
        .fetch_all(pool)
        .await
        .expect("pids");
    assert!(
        (1..=4).contains(&pids.len()),
        "expected at most 4 server connections, saw {}",
        pids.len()
    );
    let handovers: i64 = sqlx::query_scalar(
        "WITH per_tx AS (
             SELECT DISTINCT t.txid, (c.data_after ->> 'pid')::int AS pid,
                 (c.data_after ->> 'client')::int AS client, t.actor_ref IS NOT NULL AS had_ctx
             FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id
             WHERE c.op = 'insert'),
         ordered AS (
             SELECT *, lag(had_ctx) OVER w AS prev_ctx, lag(client) OVER w AS prev_client
             FROM per_tx WINDOW w AS (PARTITION BY pid ORDER BY txid))
         SELECT count(*) FROM ordered
         WHERE prev_ctx AND NOT had_ctx AND prev_client <> client",
    )
    .fetch_one(pool)
    .await
    .expect("handovers");
    eprintln!(
        "{handovers} context-free transactions ran right after another client's transaction with context on the same server connection"
    );
    assert!(handovers > 0, "the pooling scenario was not exercised");
}

/// Begins a transaction on `$conn` that runs on server backend `$pid`. PgBouncer reuses the
/// most recently released server connection first, so this takes a try or two.
macro_rules! begin_on_backend {
    ($conn:expr, $pid:expr) => {{
        let mut tries = 0;
        loop {
            let mut tx = $conn.begin().await.expect("begin");
            if backend_pid(&mut tx).await == $pid {
                break tx;
            }
            tx.rollback().await.expect("rollback");
            tries += 1;
            assert!(
                tries < 200,
                "PgBouncer never gave this client server connection {}",
                $pid
            );
        }
    }};
}

#[tokio::test]
async fn transaction_without_context_after_one_with_context_on_the_same_server_sees_none() {
    let db = setup().await;
    let mut alice = connect_bouncer(&db).await;
    let mut bob = connect_bouncer(&db).await;

    let mut tx = alice.begin().await.expect("begin");
    tx.with_actor(&ActorRef::user("alice").expect("actor"))
        .await
        .expect("actor");
    sqlx::query("INSERT INTO items (client, seq, with_ctx) VALUES (1, 1, true)")
        .persistent(false)
        .execute(&mut *tx)
        .await
        .expect("insert");
    let server = backend_pid(&mut tx).await;
    tx.commit().await.expect("commit");

    let mut tx = begin_on_backend!(bob, server);
    let seen: Option<String> =
        sqlx::query_scalar("SELECT NULLIF(current_setting('threadline.actor_ref', true), '')")
            .persistent(false)
            .fetch_one(&mut *tx)
            .await
            .expect("setting");
    assert_eq!(seen, None, "bob's transaction saw alice's actor");
    sqlx::query("INSERT INTO items (client, seq, with_ctx) VALUES (2, 1, false)")
        .persistent(false)
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");

    let actors: Vec<(i32, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT (c.data_after ->> 'client')::int, t.actor_ref
         FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id ORDER BY c.id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("actors");
    assert_eq!(
        actors,
        vec![
            (1, Some(serde_json::json!({"type": "user", "id": "alice"}))),
            (2, None)
        ]
    );
}

/// The unsafe pattern, shown so nobody uses it: a session-level `SET threadline.actor_ref`
/// stays on the *server* connection, and PgBouncer hands that connection to other clients.
/// Threadline never issues it; it only uses `set_config(name, value, true)`, which PostgreSQL
/// discards at COMMIT or ROLLBACK.
#[tokio::test]
async fn session_level_set_leaks_the_actor_to_other_clients() {
    let db = setup().await;
    let mut mallory = connect_bouncer(&db).await;
    let mut bob = connect_bouncer(&db).await;

    // One simple-protocol message, so both statements run on the same server connection.
    let row = sqlx::raw_sql(
        "SET threadline.actor_ref = '{\"type\":\"user\",\"id\":\"mallory\"}'; SELECT pg_backend_pid()",
    )
    .fetch_one(&mut mallory)
    .await
    .expect("session SET");
    let server: i32 = row.get(0);

    // Bob sets no context, as a background job or a forgotten handler might.
    let mut tx = begin_on_backend!(bob, server);
    sqlx::query("INSERT INTO items (client, seq, with_ctx) VALUES (2, 1, false)")
        .persistent(false)
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    drop(mallory);

    let actor: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT t.actor_ref FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id",
    )
    .fetch_one(&db.pool)
    .await
    .expect("actor");
    assert_eq!(
        actor,
        Some(serde_json::json!({"type": "user", "id": "mallory"})),
        "the session-level SET leaked into another client's transaction (this is why Threadline never uses it)"
    );

    // Undo the leak on that server connection, so later users of the pool start clean.
    let mut tx = begin_on_backend!(bob, server);
    sqlx::query("RESET threadline.actor_ref")
        .persistent(false)
        .execute(&mut *tx)
        .await
        .expect("reset");
    tx.commit().await.expect("commit");
}

/// Why `StatementMode::Unnamed` and `.persistent(false)` exist: with sqlx's default named
/// statements, even with `statement_cache_capacity(0)`, two clients sharing server connections
/// collide (`prepared statement "sqlx_s_1" already exists`) or miss their statement.
#[tokio::test]
async fn named_prepared_statements_break_behind_transaction_pooling() {
    let db = TestDb::installed().await;
    let mut clients = [connect_bouncer(&db).await, connect_bouncer(&db).await];
    let mut codes = Vec::new();
    for round in 0..20 {
        for conn in &mut clients {
            let mut tx = conn.begin().await.expect("begin");
            let result = sqlx::query_scalar::<_, i32>("SELECT $1::int4")
                .bind(round)
                .fetch_one(&mut *tx)
                .await;
            match result {
                Ok(_) => tx.commit().await.expect("commit"),
                Err(e) => {
                    codes.push(
                        e.as_database_error()
                            .and_then(|d| d.code())
                            .map(|c| c.into_owned())
                            .unwrap_or_else(|| e.to_string()),
                    );
                    tx.rollback().await.expect("rollback");
                }
            }
        }
    }
    assert!(
        !codes.is_empty(),
        "named statements worked behind PgBouncer; the PgBouncer advice in pooling.rs is out of date"
    );
    assert!(
        codes.iter().all(|c| c == "42P05" || c == "26000"),
        "unexpected errors: {codes:?}"
    );
}
