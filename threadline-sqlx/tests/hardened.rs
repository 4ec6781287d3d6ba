//! Hardened install (`InstallOptions::with_owner_role`): a dedicated owner role owns the audit
//! trail, capture runs as that role with a pinned `search_path`, and the application role
//! (a non-superuser that does not own the audited table) can only read the trail.

use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use threadline_sqlx::{
    ActionOptions, ActorRef, Ident, InstallOptions, Page, TableCapture, Threadline, TimelineFilter,
    TransactionExt, audit_table,
};
use threadline_test_support::TestDb;

/// A fresh database with a hardened install, an owner role and an application role (both
/// created for this test and dropped after the database).
struct Hardened {
    db: Option<TestDb>,
    owner: String,
    app: String,
}

impl Hardened {
    async fn new() -> Self {
        let db = TestDb::empty().await;
        let owner = format!("{}_owner", db.name);
        let app = format!("{}_app", db.name);
        db.exec(&format!(
            "CREATE ROLE \"{owner}\" NOLOGIN;
             CREATE ROLE \"{app}\" LOGIN;
             CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL, secret text);
             GRANT SELECT, INSERT, UPDATE, DELETE ON posts TO \"{app}\";
             CREATE SCHEMA evil AUTHORIZATION \"{app}\";"
        ))
        .await;
        let install = InstallOptions::default()
            .with_owner_role(Ident::new(owner.clone()).unwrap())
            .with_reader_role(Ident::new(app.clone()).unwrap());
        threadline_sqlx::install(&db.pool, &install).await.unwrap();
        audit_table(
            &db.pool,
            &install,
            &"posts".parse().unwrap(),
            &TableCapture::default().mask(["secret"]),
        )
        .await
        .unwrap();
        Self {
            db: Some(db),
            owner,
            app,
        }
    }

    fn db(&self) -> &TestDb {
        self.db.as_ref().unwrap()
    }

    /// A connection as the application role.
    async fn app_conn(&self) -> PgConnection {
        let options: PgConnectOptions = self.db().url.parse().unwrap();
        options.username(&self.app).connect().await.unwrap()
    }
}

impl Drop for Hardened {
    fn drop(&mut self) {
        drop(self.db.take());
        let roles = format!("DROP ROLE IF EXISTS \"{}\", \"{}\"", self.app, self.owner);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let admin: PgConnectOptions =
                    threadline_test_support::server_url().parse().unwrap();
                let mut conn = admin.connect().await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(roles))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            });
        })
        .join();
    }
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
        .unwrap_or_else(|| format!("not a database error: {e}"))
}

/// Runs `sql` in its own transaction on `conn` and returns its SQLSTATE (it must fail).
async fn refused(conn: &mut PgConnection, sql: &str) -> String {
    let mut tx = conn.begin().await.unwrap();
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await;
    tx.rollback().await.unwrap();
    match result {
        Ok(_) => format!("succeeded: {sql}"),
        Err(e) => sqlstate(&e),
    }
}

#[tokio::test]
async fn application_writes_are_captured_with_its_actor_and_it_can_read_the_trail() {
    let h = Hardened::new().await;
    let mut app = h.app_conn().await;
    let mut tx = app.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("7").unwrap()).await.unwrap();
    sqlx::query("INSERT INTO posts VALUES (1, 'hello', 's3cret'), (2, 'second', NULL)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE posts SET title = 'edited' WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM posts WHERE id = 2")
        .execute(&mut *tx)
        .await
        .unwrap();
    let action = Threadline::new(h.db().pool.clone())
        .on(&mut tx)
        .record_action(
            "post.edited",
            &ActorRef::user("7").unwrap(),
            ActionOptions::new().verb("edit"),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Read back as the application role itself (it has SELECT).
    let rows: Vec<(String, serde_json::Value, Option<serde_json::Value>, i64)> = sqlx::query_as(
        "SELECT c.op, c.table_pk, t.actor_ref, t.id
         FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id ORDER BY c.id",
    )
    .fetch_all(&mut app)
    .await
    .unwrap();
    let actor = Some(json!({"type": "user", "id": "7"}));
    let ops: Vec<_> = rows
        .iter()
        .map(|(op, pk, a, _)| (op.as_str(), pk.clone(), a.clone()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("insert", json!({"id": 1}), actor.clone()),
            ("insert", json!({"id": 2}), actor.clone()),
            ("update", json!({"id": 1}), actor.clone()),
            ("delete", json!({"id": 2}), actor.clone()),
        ]
    );
    assert_eq!(action.transaction_id, Some(rows[0].3));
    let masked: serde_json::Value =
        sqlx::query_scalar("SELECT data_after -> 'secret' FROM audit_changes ORDER BY id LIMIT 1")
            .fetch_one(&mut app)
            .await
            .unwrap();
    assert_eq!(masked, json!("[REDACTED]"));
}

#[tokio::test]
async fn application_cannot_write_alter_or_bypass_the_trail() {
    let h = Hardened::new().await;
    // Something to update and delete, captured normally.
    let mut app = h.app_conn().await;
    let mut tx = app.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("7").unwrap()).await.unwrap();
    sqlx::query("INSERT INTO posts VALUES (1, 'hello', NULL)")
        .execute(&mut *tx)
        .await
        .unwrap();
    Threadline::new(h.db().pool.clone())
        .on(&mut tx)
        .record_action(
            "post.created",
            &ActorRef::user("7").unwrap(),
            ActionOptions::new(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let capture_fn: String = sqlx::query_scalar(
        "SELECT DISTINCT tgfoid::regproc::text FROM pg_trigger WHERE tgrelid = 'posts'::regclass AND NOT tgisinternal",
    )
    .fetch_one(&h.db().pool)
    .await
    .unwrap();

    let mut attempts: Vec<String> = Vec::new();
    for table in ["audit_changes", "audit_transactions", "audit_actions"] {
        attempts.push(format!("DELETE FROM {table}"));
        attempts.push(format!("TRUNCATE {table}"));
    }
    attempts.extend([
        "INSERT INTO audit_transactions (txid, actor_ref) VALUES (1, '{\"type\":\"user\",\"id\":\"x\"}')".to_owned(),
        "INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op) VALUES (1, 'public', 'posts', '{\"id\":1}', 'insert')".to_owned(),
        "INSERT INTO audit_actions (name, actor_ref, status) VALUES ('forged', '{\"type\":\"user\",\"id\":\"x\"}', 'ok')".to_owned(),
        "UPDATE audit_changes SET data_after = '{}'".to_owned(),
        "UPDATE audit_transactions SET actor_ref = '{\"type\":\"user\",\"id\":\"x\"}'".to_owned(),
        "UPDATE audit_actions SET name = 'forged'".to_owned(),
        // Internal functions are not callable, capture functions not replaceable or attachable.
        "SELECT threadline_transaction_id()".to_owned(),
        format!("CREATE OR REPLACE FUNCTION {capture_fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"),
        format!("CREATE TABLE evil.posts (id bigint PRIMARY KEY); CREATE TRIGGER t AFTER UPDATE ON evil.posts FOR EACH ROW EXECUTE FUNCTION {capture_fn}()"),
        "ALTER FUNCTION threadline_transaction_id() SECURITY INVOKER".to_owned(),
        // Capture cannot be switched off by a role that does not own the table.
        "ALTER TABLE posts DISABLE TRIGGER USER".to_owned(),
        "DROP TRIGGER threadline_capture_update ON posts".to_owned(),
        "SET session_replication_role = replica".to_owned(),
    ]);
    for sql in &attempts {
        let state = refused(&mut app, sql).await;
        assert_eq!(
            state, "42501",
            "expected insufficient_privilege (42501) for {sql}"
        );
    }

    let (changes, transactions, actions): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM audit_changes), (SELECT count(*) FROM audit_transactions),
                (SELECT count(*) FROM audit_actions)",
    )
    .fetch_one(&h.db().pool)
    .await
    .unwrap();
    assert_eq!((changes, transactions, actions), (1, 1, 1));
}

/// Objects planted earlier in the caller's `search_path` are never used by capture: a fake
/// `jsonb_build_object` / `to_jsonb` and fake audit tables in a schema the application owns.
/// Without hardening (same attack, same SQL) the fake function *is* used, so this test would
/// notice if the pinned `search_path` stopped protecting.
#[tokio::test]
async fn planted_functions_and_tables_earlier_in_search_path_are_ignored() {
    const PLANT_KEY: &str = r#"
        CREATE FUNCTION evil.jsonb_build_object(text, jsonb) RETURNS jsonb
            LANGUAGE sql AS $$ SELECT '{"id": 999}'::jsonb $$;"#;
    const PLANT: &str = r#"
        CREATE FUNCTION evil.to_jsonb(posts) RETURNS jsonb
            LANGUAGE sql AS $$ SELECT '{"forged": true}'::jsonb $$;
        CREATE TABLE evil.audit_changes (id bigint, transaction_id bigint, table_schema text,
            table_name text, table_pk jsonb, op text, data_after jsonb, data_before jsonb,
            changed_fields text[], changed_from jsonb, captured_at timestamptz);
        CREATE TABLE evil.audit_transactions (id bigint, txid bigint, actor_ref jsonb);
    "#;
    const ATTACK: &str = "SET LOCAL search_path = evil, pg_catalog, public;
        INSERT INTO posts VALUES (1, 'hello', NULL);
        UPDATE posts SET title = 'edited' WHERE id = 1;";

    let h = Hardened::new().await;
    let mut app = h.app_conn().await;
    sqlx::raw_sql(PLANT_KEY).execute(&mut app).await.unwrap();
    sqlx::raw_sql(PLANT).execute(&mut app).await.unwrap();
    let mut tx = app.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("7").unwrap()).await.unwrap();
    sqlx::raw_sql(ATTACK).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let captured: Vec<(serde_json::Value, serde_json::Value)> =
        sqlx::query_as("SELECT table_pk, data_after FROM public.audit_changes ORDER BY id")
            .fetch_all(&h.db().pool)
            .await
            .unwrap();
    assert_eq!(captured.len(), 2);
    for (pk, image) in &captured {
        assert_eq!(pk, &json!({"id": 1}));
        assert_eq!(image["id"], json!(1), "{image}");
    }
    let fake: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM evil.audit_changes) + (SELECT count(*) FROM evil.audit_transactions)",
    )
    .fetch_one(&h.db().pool)
    .await
    .unwrap();
    assert_eq!(fake, 0);

    // The same attack against a default (unhardened) install succeeds: the forged key lands.
    let plain = TestDb::installed().await;
    plain
        .exec("CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL, secret text); CREATE SCHEMA evil;")
        .await;
    audit_table(
        &plain.pool,
        &InstallOptions::default(),
        &"posts".parse().unwrap(),
        &TableCapture::default(),
    )
    .await
    .unwrap();
    // (The planted to_jsonb is left out here: against the unhardened install it makes the
    // capture fail with an ambiguous function instead, a denial of service.)
    plain.exec(PLANT_KEY).await;
    let mut conn = plain.connect().await;
    let mut tx = conn.begin().await.unwrap();
    sqlx::raw_sql(ATTACK).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let pks: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT table_pk FROM audit_changes ORDER BY id")
            .fetch_all(&plain.pool)
            .await
            .unwrap();
    assert!(
        pks.contains(&json!({"id": 999})),
        "the unhardened install was expected to use the planted function: {pks:?}"
    );
}

#[tokio::test]
async fn retention_purge_runs_as_the_owner_role_and_not_as_the_application() {
    use sqlx::postgres::PgPoolOptions;
    use threadline_sqlx::{Error, PurgeOptions, RetentionPolicy, purge};

    let h = Hardened::new().await;
    let mut app = h.app_conn().await;
    let mut tx = app.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("7").unwrap()).await.unwrap();
    sqlx::query("INSERT INTO posts SELECT g, 'p', NULL FROM generate_series(1, 50) g")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    h.db()
        .exec("UPDATE audit_changes SET captured_at = captured_at - interval '100 days'")
        .await;
    let policy = RetentionPolicy::keep_days(30).unwrap().enabled(true);
    let install = InstallOptions::default();

    let options: PgConnectOptions = h.db().url.parse().unwrap();
    let app_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone().username(&h.app))
        .await
        .unwrap();
    let denied = purge(&app_pool, &install, &policy, &PurgeOptions::default())
        .await
        .unwrap_err();
    match &denied {
        Error::Database(e) => assert_eq!(sqlstate(e), "42501", "{denied}"),
        other => panic!("expected a permission error, got {other}"),
    }

    // An operator session acting as the owner role (SET ROLE drops superuser rights).
    let owner = h.owner.clone();
    let owner_pool = PgPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            let set_role = format!("SET ROLE \"{owner}\"");
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(set_role))
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with(options)
        .await
        .unwrap();
    let is_superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&owner_pool)
            .await
            .unwrap();
    assert!(!is_superuser);
    let report = purge(&owner_pool, &install, &policy, &PurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (report.deleted_changes, report.deleted_transactions),
        (50, 1)
    );
}

/// `threadline.txn` caches the current transaction's audit row as `<txid>:<id>:<key>`, and any role
/// can write it. Hardened capture checks that the id names a row of this transaction, so the
/// application cannot file its changes (or its actions) under another transaction's actor.
#[tokio::test]
async fn a_forged_transaction_cache_cannot_attach_changes_to_another_transaction() {
    let h = Hardened::new().await;
    let mut app = h.app_conn().await;
    let mut tx = app.begin().await.unwrap();
    tx.with_actor(&ActorRef::admin("victim").unwrap())
        .await
        .unwrap();
    sqlx::query("INSERT INTO posts VALUES (1, 'by the admin', NULL), (2, 'b', NULL)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let victim: i64 = sqlx::query_scalar("SELECT id FROM audit_transactions")
        .fetch_one(&mut app)
        .await
        .unwrap();

    let mut tx = app.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("mallory").unwrap())
        .await
        .unwrap();
    sqlx::query("SELECT set_config('threadline.txn', txid_current()::text || ':' || $1, true)")
        .bind(victim.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    // A bulk statement, a key change (the row-level path) and an action.
    sqlx::query("INSERT INTO posts VALUES (3, 'by mallory', NULL)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE posts SET id = 20 WHERE id = 2")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mallory = ActorRef::user("mallory").unwrap();
    let action = Threadline::new(h.db().pool.clone())
        .on(&mut tx)
        .record_action("post.moved", &mallory, ActionOptions::new())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let filed: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT c.op, t.actor_ref FROM audit_changes c
         JOIN audit_transactions t ON t.id = c.transaction_id
         WHERE c.transaction_id <> $1 ORDER BY c.id",
    )
    .bind(victim)
    .fetch_all(&mut app)
    .await
    .unwrap();
    let mallory_json = json!({"type": "user", "id": "mallory"});
    assert_eq!(
        filed,
        [
            ("insert".to_owned(), mallory_json.clone()),
            ("update".to_owned(), mallory_json.clone())
        ]
    );
    let under_victim: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_changes WHERE transaction_id = $1")
            .bind(victim)
            .fetch_one(&mut app)
            .await
            .unwrap();
    assert_eq!(under_victim, 2, "only the admin's own two inserts");
    assert_ne!(action.transaction_id, Some(victim));
    assert!(action.transaction_id.is_some());
}

/// The cache also carries the actor key that `audit_changes.actor_key` takes. Hardened capture
/// reads the key of a change with an actor from the verified transaction row, so a forged key
/// cannot hide the application's changes from the timeline by actor.
#[tokio::test]
async fn a_forged_actor_key_cannot_hide_changes_from_the_timeline_by_actor() {
    let h = Hardened::new().await;
    let mut app = h.app_conn().await;
    let mallory = ActorRef::user("mallory").unwrap();
    let mut tx = app.begin().await.unwrap();
    tx.with_actor(&mallory).await.unwrap();
    sqlx::query("INSERT INTO posts VALUES (1, 'first', NULL)")
        .execute(&mut *tx)
        .await
        .unwrap();
    // Keep the real transaction id and txid, replace the key.
    sqlx::query(
        "SELECT set_config('threadline.txn',
             split_part(current_setting('threadline.txn'), ':', 1) || ':' ||
             split_part(current_setting('threadline.txn'), ':', 2) || ':12345', true)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    // A bulk statement and a key change (the row-level path).
    sqlx::raw_sql(
        "INSERT INTO posts VALUES (2, 'second', NULL); UPDATE posts SET id = 20 WHERE id = 2",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let keys: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT c.actor_key - hashtextextended(t.actor_ref::text, 0) FROM audit_changes c
         JOIN audit_transactions t ON t.id = c.transaction_id ORDER BY c.id",
    )
    .fetch_all(&mut app)
    .await
    .unwrap();
    assert_eq!(
        keys,
        [Some(0), Some(0), Some(0)],
        "every key is the actor's"
    );
    let page = Threadline::new(h.db().pool.clone())
        .timeline(&TimelineFilter::new().actor(mallory), Page::first())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
}

#[tokio::test]
async fn truncate_is_captured_as_the_owner_and_the_application_cannot_truncate_the_trail() {
    let h = Hardened::new().await;
    h.db()
        .exec(&format!("GRANT TRUNCATE ON posts TO \"{}\"", h.app))
        .await;
    let mut app = h.app_conn().await;
    sqlx::raw_sql("INSERT INTO posts VALUES (1, 'a', NULL), (2, 'b', NULL); TRUNCATE posts")
        .execute(&mut app)
        .await
        .unwrap();
    let recorded: (String, serde_json::Value, Option<serde_json::Value>) = sqlx::query_as(
        "SELECT op, table_pk, data_before FROM audit_changes ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    assert_eq!(
        recorded,
        ("truncate".into(), json!({}), Some(json!({"rows": 2})))
    );
    for table in ["audit_changes", "audit_transactions", "audit_actions"] {
        let state = refused(&mut app, &format!("TRUNCATE {table}")).await;
        assert_eq!(state, "42501", "TRUNCATE {table}");
    }
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_changes")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(kept, 3);
}

/// Seals and erasure records are the owner's: the application role can neither seal, erase
/// nor write either table directly, until it is made a member of the owner role.
#[tokio::test]
async fn only_the_owner_role_writes_seals_and_erasures_unless_granted() {
    use threadline_sqlx::{EraseOptions, Error, SealOutcome};
    let h = Hardened::new().await;
    let mut app = h.app_conn().await;
    let mut tx = app.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("7").unwrap()).await.unwrap();
    sqlx::query("INSERT INTO posts VALUES (1, 'hello', 's3cret')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let app_url = {
        let options: PgConnectOptions = h.db().url.parse().unwrap();
        options.username(&h.app)
    };
    let app_pool = sqlx::PgPool::connect_with(app_url).await.unwrap();
    let as_app = Threadline::new(app_pool.clone());
    let denied = |e: Error| match e {
        Error::Database(e) => sqlstate(&e),
        other => format!("not a database error: {other}"),
    };
    assert_eq!(denied(as_app.seal().await.unwrap_err()), "42501");
    let erase = EraseOptions::new("request 1");
    let admin = ActorRef::parse_short("admin:1").unwrap();
    assert_eq!(
        denied(as_app.erase("posts", 1, &erase, &admin).await.unwrap_err()),
        "42501"
    );
    for sql in [
        "INSERT INTO audit_seals (id, encoding_version, from_txid, to_txid, transaction_count, change_count, action_count, hash) VALUES (1, 1, 0, 1, 0, 0, 0, '\\x00')",
        "INSERT INTO audit_seal_items (kind, item_id, seal_id, digest) VALUES ('C', 1, 1, '\\x00')",
        "INSERT INTO audit_erasures (action_id, change_id, columns, digest) VALUES (1, 1, '{}', '\\x00')",
        "UPDATE audit_changes SET data_after = '{}'",
    ] {
        assert_eq!(refused(&mut app, sql).await, "42501", "{sql}");
    }
    // It may read them (it is a reader role).
    let seals: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_seals")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert_eq!(seals, 0);

    // The owner's privileges (the superuser here) seal and erase.
    let owner = Threadline::new(h.db().pool.clone());
    assert!(matches!(
        owner.seal().await.unwrap(),
        SealOutcome::Sealed(_)
    ));

    // Granted membership of the owner role, as the guide shows, the role can do both.
    h.db()
        .exec(&format!("GRANT \"{}\" TO \"{}\"", h.owner, h.app))
        .await;
    let granted = sqlx::PgPool::connect_with({
        let options: PgConnectOptions = h.db().url.parse().unwrap();
        options.username(&h.app)
    })
    .await
    .unwrap();
    let as_member = Threadline::new(granted);
    let done = as_member.erase("posts", 1, &erase, &admin).await.unwrap();
    assert_eq!(done.plan.steps.len(), 1);
    assert!(matches!(
        as_member.seal().await.unwrap(),
        SealOutcome::Sealed(_)
    ));
    let v = as_member.verify_seals(None).await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!(v.erased.len(), 1);
}
