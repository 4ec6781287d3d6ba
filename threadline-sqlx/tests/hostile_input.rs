//! Hostile input against the real server: a few hundred generated table, schema and column
//! names (quotes, spaces, unicode, 63-byte names, reserved words, injection attempts) must
//! install and capture; hostile values of the actor setting must be rejected with an error
//! that names the setting, or stored exactly as given.

use serde_json::{Value, json};
use sqlx::{Connection, Row};
use threadline_sqlx::{Ident, InstallOptions, TableCapture, TableName, audit_table};
use threadline_test_support::TestDb;

const RESERVED: &[&str] = &[
    "select",
    "from",
    "where",
    "table",
    "user",
    "order",
    "group",
    "end",
    "limit",
    "offset",
    "primary",
    "references",
    "check",
    "default",
    "null",
    "true",
    "all",
    "and",
    "or",
    "not",
    "create",
    "drop",
    "grant",
    "union",
    "case",
    "when",
    "then",
    "else",
    "as",
    "on",
    "public",
    "audit_changes",
    "audit_transactions",
    "threadline_capture_insert",
    "trigger",
    "function",
];

/// Deterministic pseudo-random characters, weighted toward the awkward ones.
fn generated(seed: u64, len: usize) -> String {
    const POOL: &[&str] = &[
        "a", "Z", "_", "$", "0", " ", "\"", "'", ".", ";", "-", "\\", "%", "(", ")", "é", "ß",
        "日", "本", "😀", "\u{301}", "\t", "`", "--", "/*",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = String::new();
    while out.chars().count() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let piece = POOL[(x % POOL.len() as u64) as usize];
        if out.len() + piece.len() > 63 {
            break;
        }
        out.push_str(piece);
    }
    if out.is_empty() { "x".to_owned() } else { out }
}

/// (schema, table, key column) triples: every awkward kind of name, and generated ones.
fn names() -> Vec<(String, String, String)> {
    let schemas = ["public", "Odd Schema", "日本", "s\"q", "select"];
    let mut tables: Vec<String> = RESERVED.iter().map(|s| (*s).to_owned()).collect();
    tables.extend(
        [
            "My Table",
            "a\"b",
            "it's",
            "x; DROP TABLE posts; --",
            "back\\slash",
            "per%cent",
            "$dollar",
            "1starts_with_digit",
            "MixedCase",
            "trailing space ",
            " leading space",
            "tab\there",
            "😀 emoji",
            "e\u{301}",
        ]
        .map(str::to_owned),
    );
    // 63-byte names, and pairs sharing a long prefix (their function names must not collide).
    tables.push("l".repeat(63));
    tables.push(format!("{}a", "p".repeat(62)));
    tables.push(format!("{}b", "p".repeat(62)));
    tables.push("日".repeat(21));
    tables.push(format!("{}x", "é".repeat(31)));
    for seed in 0..240 {
        tables.push(generated(seed, 1 + (seed as usize % 40)));
    }
    let keys = ["id", "Key Column", "select", "k\"ey", "ключ"];
    let mut seen = std::collections::BTreeSet::new();
    tables
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let schema = schemas[i % schemas.len()].to_owned();
            let key = keys[i % keys.len()].to_owned();
            seen.insert((schema.clone(), t.clone()))
                .then_some((schema, t, key))
        })
        .collect()
}

fn q(name: &str) -> String {
    threadline_sqlx::Ident::new(name).unwrap().quoted()
}

#[tokio::test]
async fn hundreds_of_hostile_names_install_and_capture() {
    let db = TestDb::installed().await;
    let names = names();
    assert!(names.len() >= 250, "{} names", names.len());
    eprintln!("{} generated tables", names.len());
    for schema in ["Odd Schema", "日本", "s\"q", "select"] {
        db.exec(&format!("CREATE SCHEMA {}", q(schema))).await;
    }
    let mut conn = db.connect().await;
    for (schema, table, key) in &names {
        let qualified = format!("{}.{}", q(schema), q(table));
        db.exec(&format!(
            "CREATE TABLE {qualified} ({} bigint PRIMARY KEY, \"val ue\" text, \"from\" int)",
            q(key)
        ))
        .await;
        let name = TableName::new(
            Ident::new(schema.clone()).unwrap(),
            Ident::new(table.clone()).unwrap(),
        );
        audit_table(
            &db.pool,
            &InstallOptions::default(),
            &name,
            &TableCapture::default().mask(["val ue"]),
        )
        .await
        .unwrap_or_else(|e| panic!("audit {qualified}: {e}"));
        let mut tx = conn.begin().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {qualified} VALUES (1, 'secret', 1), (2, 'b', 2);
             UPDATE {qualified} SET \"from\" = 3 WHERE {k} = 1;
             DELETE FROM {qualified} WHERE {k} = 2;",
            k = q(key)
        )))
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("write {qualified}: {e}"));
        tx.commit().await.unwrap();
    }
    // Four changes per table, under its exact name, keyed by its exact key column.
    let rows = sqlx::query(
        "SELECT table_schema, table_name, array_agg(op ORDER BY id),
                array_agg(table_pk ORDER BY id), bool_and(data_after IS NULL OR data_after ->> 'val ue' = '[REDACTED]')
         FROM audit_changes GROUP BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), names.len());
    for row in rows {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        let key = &names
            .iter()
            .find(|(s, t, _)| *s == schema && *t == table)
            .unwrap_or_else(|| panic!("unexpected table {schema}.{table}"))
            .2;
        let ops: Vec<String> = row.get(2);
        assert_eq!(
            ops,
            ["insert", "insert", "update", "delete"],
            "{schema}.{table}"
        );
        let pks: Vec<Value> = row.get(3);
        assert_eq!(pks[0], json!({ key.as_str(): 1 }), "{schema}.{table}");
        assert!(
            row.get::<bool, _>(4),
            "{schema}.{table}: masked column leaked"
        );
    }
}

/// A transaction that sets `threadline.actor_ref` to `value` directly (as raw SQL could) and
/// writes one audited row. Returns the stored actor, or the error.
async fn write_with_raw_actor(db: &TestDb, value: &str) -> Result<Option<Value>, sqlx::Error> {
    let mut conn = db.connect().await;
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT set_config('threadline.actor_ref', $1, true)")
        .bind(value)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO posts (title) VALUES ('x')")
        .execute(&mut *tx)
        .await?;
    let actor =
        sqlx::query_scalar("SELECT t.actor_ref FROM audit_transactions t ORDER BY id DESC LIMIT 1")
            .fetch_one(&mut *tx)
            .await?;
    tx.rollback().await?;
    Ok(actor)
}

#[tokio::test]
async fn hostile_actor_settings_are_rejected_by_name_or_stored_exactly() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text)")
        .await;
    audit_table(
        &db.pool,
        &InstallOptions::default(),
        &"posts".parse().unwrap(),
        &TableCapture::default(),
    )
    .await
    .unwrap();

    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let rejected = [
        ("not JSON", "{\"type\": \"user\", ".to_owned()),
        ("a number", "42".to_owned()),
        ("a string", "\"user\"".to_owned()),
        ("an array", "[\"user\", \"7\"]".to_owned()),
        ("JSON null", "null".to_owned()),
        ("no type", "{\"id\": \"7\"}".to_owned()),
        ("a numeric type", "{\"type\": 7}".to_owned()),
        ("a deeply nested array", deep(5_000)),
        (
            "deep nesting inside an object",
            format!("{{\"type\": \"user\", \"x\": {}}}", deep(100_000)),
        ),
        ("1 MB of garbage", "x".repeat(1 << 20)),
        (
            "a NUL escape",
            r#"{"type": "user", "id": "\u0000"}"#.to_owned(),
        ),
    ];
    for (what, value) in &rejected {
        let err = write_with_raw_actor(&db, value)
            .await
            .expect_err(&format!("{what} was accepted"));
        let message = err
            .as_database_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        assert!(
            message.contains("threadline.actor_ref"),
            "{what}: unclear error: {err}"
        );
    }

    // Too big for the actor index: refused by name instead of failing inside the index.
    let huge = json!({"type": "user", "id": "x".repeat(1 << 20)}).to_string();
    let err = write_with_raw_actor(&db, &huge).await.unwrap_err();
    assert!(err.to_string().contains("the limit is 2048"), "{err}");

    // Well-formed objects with a string type are stored exactly, however odd.
    let stored = [
        json!({"type": "user", "id": "x".repeat(1_900)}),
        json!({"type": "user", "id": 7}),
        json!({"type": "martian", "id": "\u{7f}\u{85}'; DROP TABLE posts; --"}),
        json!({"type": "user", "id": "7", "extra": {"nested": [1, 2, {"a": null}]}}),
    ];
    for value in &stored {
        let got = write_with_raw_actor(&db, &value.to_string()).await.unwrap();
        assert_eq!(got.as_ref(), Some(value));
    }
}
