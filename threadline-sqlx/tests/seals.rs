//! Seals on the real PostgreSQL: sealing, the tamper matrix (modify, delete, insert, broken
//! link; each at the start, middle and end of a range), erasure, retention and layouts.

use serde_json::{Value, json};
use sqlx::{Connection, PgPool};
use threadline_sqlx::{
    ActionOptions, ActorRef, Config, EraseOptions, Error, InstallOptions, PurgeOptions,
    RetentionPolicy, SealOutcome, SealProblem, SealVerification, SnapshotOptions, TableCapture,
    Threadline, TransactionExt,
};
use threadline_test_support::TestDb;

/// Commits one transaction running `sql` as user 7; returns its audit transaction id.
async fn write(pool: &PgPool, sql: &str) -> i64 {
    let mut tx = pool.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("7").unwrap()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT threadline_transaction_id()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Seals, waiting while a transaction of the database that is not the test's own holds the
/// boundary back (an autovacuum ANALYZE of the fresh tables takes a txid, for one).
async fn sealed(threadline: &Threadline) -> threadline_sqlx::Seal {
    for _ in 0..100 {
        match threadline.seal().await.unwrap() {
            SealOutcome::Sealed(seal) => return seal,
            SealOutcome::NothingNew { .. } => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            other => panic!("expected a seal, got {other:?}"),
        }
    }
    panic!("no seal after 10 s: a transaction of this database stayed open")
}

async fn ids(db: &TestDb, sql: &str) -> Vec<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// Three seals; seal 2 holds transactions t[0], t[1], t[2] (two changes each), an action
/// linked to t[1] and a standalone action recorded outside any transaction.
struct Fixture {
    db: TestDb,
    threadline: Threadline,
    /// Seal 2's transactions.
    t: Vec<i64>,
    /// Seal 2's changes, in id order.
    c: Vec<i64>,
    /// Seal 2's actions: linked, standalone.
    a: Vec<i64>,
    seal2: threadline_sqlx::Seal,
}

async fn fixture() -> Fixture {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE people (id bigint PRIMARY KEY, email text, name text)")
        .await;
    db.audit("people", &TableCapture::default().store_changed_from(true))
        .await;
    let threadline = Threadline::new(db.pool.clone());
    write(
        &db.pool,
        "INSERT INTO people VALUES (1, 'a@x', 'A'), (2, 'b@x', 'B')",
    )
    .await;
    sealed(&threadline).await;
    let mut t = Vec::new();
    t.push(
        write(
            &db.pool,
            "INSERT INTO people VALUES (3, 'c@x', 'C'), (4, 'd@x', 'D')",
        )
        .await,
    );
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("8").unwrap()).await.unwrap();
    sqlx::query("UPDATE people SET email = email || '.org' WHERE id IN (1, 3)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let linked = threadline
        .on(&mut tx)
        .record_action(
            "people.fixed",
            &ActorRef::user("8").unwrap(),
            ActionOptions::new(),
        )
        .await
        .unwrap();
    t.push(linked.transaction_id.unwrap());
    tx.commit().await.unwrap();
    let standalone = threadline
        .record_action(
            "people.report",
            &ActorRef::user("9").unwrap(),
            ActionOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(standalone.transaction_id, None);
    t.push(write(&db.pool, "DELETE FROM people WHERE id IN (2, 4)").await);
    let seal2 = sealed(&threadline).await;
    write(&db.pool, "INSERT INTO people VALUES (5, 'e@x', 'E')").await;
    sealed(&threadline).await;
    let c = ids(
        &db,
        &format!(
            "SELECT id FROM audit_changes WHERE transaction_id IN ({}, {}, {}) ORDER BY id",
            t[0], t[1], t[2]
        ),
    )
    .await;
    assert_eq!(c.len(), 6);
    assert_eq!(
        (
            seal2.transaction_count,
            seal2.change_count,
            seal2.action_count
        ),
        (3, 6, 2)
    );
    let verified = threadline.verify_seals(None).await.unwrap();
    assert!(verified.is_ok(), "{:?}", verified.problems);
    assert_eq!(
        (
            verified.seals,
            verified.transactions,
            verified.changes,
            verified.actions
        ),
        (3, 5, 9, 2)
    );
    Fixture {
        db,
        threadline,
        t,
        c,
        a: vec![linked.id, standalone.id],
        seal2,
    }
}

impl Fixture {
    async fn tamper(&self, sql: &str) -> SealVerification {
        self.db.exec(sql).await;
        let v = self.threadline.verify_seals(None).await.unwrap();
        assert!(!v.is_ok(), "tampering went unnoticed: {sql}");
        v
    }
}

fn first(v: &SealVerification) -> &SealProblem {
    &v.problems[0]
}

#[tokio::test]
async fn modified_rows_are_located_at_the_start_middle_and_end_of_a_range() {
    for (pick, tx) in [(0usize, 0usize), (3, 1), (5, 2)] {
        let f = fixture().await;
        let change = f.c[pick];
        let v = f
            .tamper(&format!(
                "UPDATE audit_changes SET data_after = jsonb_set(coalesce(data_after, '{{}}'), '{{email}}', '\"forged\"') WHERE id = {change}"
            ))
            .await;
        assert_eq!(
            first(&v),
            &SealProblem::Modified {
                seal: 2,
                kind: "change",
                id: change,
                transaction_id: Some(f.t[tx]),
            }
        );
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert_eq!(
            first(&v).to_string(),
            format!(
                "seal 2: change {change} (transaction {}) was modified after it was sealed",
                f.t[tx]
            )
        );
    }
    // A transaction's context and an action's reason are sealed too.
    let f = fixture().await;
    let v = f
        .tamper(&format!(
            "UPDATE audit_transactions SET actor_ref = '{{\"type\":\"user\",\"id\":\"1\"}}' WHERE id = {}",
            f.t[1]
        ))
        .await;
    assert_eq!(
        first(&v),
        &SealProblem::Modified {
            seal: 2,
            kind: "transaction",
            id: f.t[1],
            transaction_id: Some(f.t[1])
        }
    );
    let v = f
        .tamper(&format!(
            "UPDATE audit_actions SET reason = 'later' WHERE id = {}",
            f.a[1]
        ))
        .await;
    assert!(
        v.problems.contains(&SealProblem::Modified {
            seal: 2,
            kind: "action",
            id: f.a[1],
            transaction_id: None
        }),
        "{:?}",
        v.problems
    );
}

#[tokio::test]
async fn deleted_rows_are_located_at_the_start_middle_and_end_of_a_range() {
    // Start: the first transaction with its changes.
    let f = fixture().await;
    let v = f
        .tamper(&format!(
            "DELETE FROM audit_changes WHERE transaction_id = {t}; DELETE FROM audit_transactions WHERE id = {t}",
            t = f.t[0]
        ))
        .await;
    assert_eq!(
        first(&v),
        &SealProblem::Deleted {
            seal: 2,
            kind: "transaction",
            id: f.t[0],
            transaction_id: Some(f.t[0])
        }
    );
    assert_eq!(
        v.problems.len(),
        3,
        "the transaction and its two changes: {:?}",
        v.problems
    );
    // Middle and end: one change.
    for (pick, tx) in [(3usize, 1usize), (5, 2)] {
        let f = fixture().await;
        let v = f
            .tamper(&format!(
                "DELETE FROM audit_changes WHERE id = {}",
                f.c[pick]
            ))
            .await;
        assert_eq!(
            first(&v),
            &SealProblem::Deleted {
                seal: 2,
                kind: "change",
                id: f.c[pick],
                transaction_id: Some(f.t[tx])
            }
        );
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(
            first(&v)
                .to_string()
                .contains("was deleted after it was sealed")
        );
    }
    // An action.
    let f = fixture().await;
    let v = f
        .tamper(&format!("DELETE FROM audit_actions WHERE id = {}", f.a[0]))
        .await;
    assert_eq!(
        first(&v),
        &SealProblem::Deleted {
            seal: 2,
            kind: "action",
            id: f.a[0],
            transaction_id: Some(f.t[1])
        }
    );
}

#[tokio::test]
async fn rows_inserted_into_a_sealed_range_are_located_at_its_start_middle_and_end() {
    // A transaction row at the first, a middle and the last txid of the range.
    for txid in ["from_txid", "(from_txid + to_txid) / 2", "to_txid - 1"] {
        let f = fixture().await;
        let v = f
            .tamper(&format!(
                "INSERT INTO audit_transactions (txid, actor_ref) SELECT {txid}, '{{\"type\":\"user\",\"id\":\"7\"}}' FROM audit_seals WHERE id = 2"
            ))
            .await;
        let forged = f.db.scalar("SELECT max(id) FROM audit_transactions").await;
        assert_eq!(
            first(&v),
            &SealProblem::Inserted {
                seal: 2,
                kind: "transaction",
                id: forged,
                transaction_id: Some(forged)
            }
        );
        assert!(
            first(&v)
                .to_string()
                .contains("was inserted into the sealed range")
        );
    }
    // A change into a sealed transaction, and an action into the range.
    let f = fixture().await;
    let v = f
        .tamper(&format!(
            "INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after) \
             VALUES ({}, 'public', 'people', '{{\"id\": 9}}', 'insert', '{{\"id\": 9}}')",
            f.t[1]
        ))
        .await;
    let forged = f.db.scalar("SELECT max(id) FROM audit_changes").await;
    assert_eq!(
        first(&v),
        &SealProblem::Inserted {
            seal: 2,
            kind: "change",
            id: forged,
            transaction_id: Some(f.t[1])
        }
    );
    let v = f
        .tamper(&format!(
            "INSERT INTO audit_actions (name, actor_ref, status, txid) VALUES ('forged', '{{\"type\":\"user\",\"id\":\"7\"}}', 'ok', {})",
            f.seal2.to_txid - 1
        ))
        .await;
    let forged = f.db.scalar("SELECT max(id) FROM audit_actions").await;
    assert!(
        v.problems.contains(&SealProblem::Inserted {
            seal: 2,
            kind: "action",
            id: forged,
            transaction_id: None
        }),
        "{:?}",
        v.problems
    );
}

#[tokio::test]
async fn broken_links_are_located_at_the_start_middle_and_end_of_the_chain() {
    // Start: the first seal claims a predecessor.
    let f = fixture().await;
    let v = f
        .tamper("UPDATE audit_seals SET prev_hash = sha256('x') WHERE id = 1")
        .await;
    assert!(
        matches!(first(&v), SealProblem::BrokenLink { seal: 1, .. }),
        "{:?}",
        v.problems
    );
    // Middle: seal 2 is deleted with its digests; seal 3 no longer links.
    let f = fixture().await;
    let v = f
        .tamper(
            "DELETE FROM audit_seal_items WHERE seal_id = 2; DELETE FROM audit_seals WHERE id = 2",
        )
        .await;
    assert_eq!(
        first(&v),
        &SealProblem::BrokenLink {
            seal: 3,
            detail: "seals 2 to 2 are missing".to_owned()
        }
    );
    // Middle: seal 2's previous hash is rewritten.
    let f = fixture().await;
    let v = f
        .tamper("UPDATE audit_seals SET prev_hash = sha256('x') WHERE id = 2")
        .await;
    assert!(
        matches!(first(&v), SealProblem::BrokenLink { seal: 2, .. }),
        "{:?}",
        v.problems
    );
    assert!(
        first(&v).to_string().contains("is not seal 1's hash"),
        "{}",
        first(&v)
    );
    // End: the head's hash is rewritten (to hide a change, say): its digests no longer
    // reproduce it.
    let f = fixture().await;
    let v = f
        .tamper("UPDATE audit_seals SET hash = sha256('x') WHERE id = 3")
        .await;
    assert_eq!(first(&v), &SealProblem::DigestsAltered { seal: 3 });
    // A rewritten kept digest is caught by its seal's hash, and the row by its digest.
    let f = fixture().await;
    let v = f
        .tamper(&format!(
            "UPDATE audit_seal_items SET digest = sha256('x') WHERE kind = 'C' AND item_id = {}",
            f.c[2]
        ))
        .await;
    assert_eq!(first(&v), &SealProblem::DigestsAltered { seal: 2 });
}

#[tokio::test]
async fn verification_from_a_seal_and_of_a_clean_chain_reports_counts_and_head() {
    let f = fixture().await;
    let v = f.threadline.verify_seals(Some(2)).await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!((v.first_verified, v.seals, v.changes), (Some(2), 2, 7));
    let head = f.threadline.seals().await.unwrap().pop().unwrap();
    assert_eq!(v.head_hash(), Some(head.hash.as_str()));
    assert_eq!(head.prev_hash.as_deref(), Some(f.seal2.hash.as_str()));
    // A change before the checked seals is not looked at.
    f.db.exec("DELETE FROM audit_changes WHERE id = (SELECT min(id) FROM audit_changes)")
        .await;
    assert!(f.threadline.verify_seals(Some(2)).await.unwrap().is_ok());
    assert!(!f.threadline.verify_seals(None).await.unwrap().is_ok());
    let e = f.threadline.verify_seals(Some(9)).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("seal 9 does not exist; the newest seal is 3"),
        "{e}"
    );
    // seals_covering: the seals overlapping a txid range.
    let covering = f
        .threadline
        .seals_covering(f.seal2.from_txid, f.seal2.from_txid + 1)
        .await
        .unwrap();
    assert_eq!(covering.iter().map(|s| s.id).collect::<Vec<_>>(), [2]);
    let all = f.threadline.seals_covering(0, i64::MAX).await.unwrap();
    assert_eq!(all.len(), 3);
}

#[tokio::test]
async fn a_running_transaction_is_left_for_the_next_seal_and_concurrent_runs_are_harmless() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE people (id bigint PRIMARY KEY, email text)")
        .await;
    db.audit("people", &TableCapture::default()).await;
    let threadline = Threadline::new(db.pool.clone());
    assert!(matches!(
        threadline.seal().await.unwrap(),
        SealOutcome::NothingNew { from_txid: 0 }
    ));
    write(&db.pool, "INSERT INTO people VALUES (1, 'a')").await;

    // A transaction that has written but not committed holds the boundary back.
    let mut open = db.connect().await;
    let mut open_tx = open.begin().await.unwrap();
    sqlx::query("INSERT INTO people VALUES (2, 'b')")
        .execute(&mut *open_tx)
        .await
        .unwrap();
    let open_txid: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut *open_tx)
        .await
        .unwrap();
    let first_seal = sealed(&threadline).await;
    assert!(
        first_seal.to_txid <= open_txid,
        "{first_seal:?} vs {open_txid}"
    );
    assert_eq!(first_seal.change_count, 1);
    open_tx.commit().await.unwrap();
    let second = sealed(&threadline).await;
    assert_eq!(
        (second.change_count, second.from_txid),
        (1, first_seal.to_txid)
    );
    assert!(threadline.verify_seals(None).await.unwrap().is_ok());

    // Another run holding the lock: this one does nothing.
    let mut holder = db.connect().await;
    sqlx::query("SELECT pg_advisory_lock(hashtextextended('threadline.seal:\"public\"', 0))")
        .execute(&mut holder)
        .await
        .unwrap();
    write(&db.pool, "INSERT INTO people VALUES (3, 'c')").await;
    assert_eq!(threadline.seal().await.unwrap(), SealOutcome::Busy);
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended('threadline.seal:\"public\"', 0))")
        .execute(&mut holder)
        .await
        .unwrap();
    // Two at once: one seals, the other is busy or finds nothing new; never two seals.
    let (a, b) = tokio::join!(threadline.seal(), threadline.seal());
    let sealed_runs = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|o| matches!(o, SealOutcome::Sealed(_)))
        .count();
    assert!(sealed_runs <= 1, "two concurrent runs both sealed");
    if sealed_runs == 0 {
        // Both found the boundary held back by another transaction of the database.
        sealed(&threadline).await;
    }
    assert_eq!(db.scalar("SELECT count(*) FROM audit_seals").await, 3);
    assert!(threadline.verify_seals(None).await.unwrap().is_ok());
}

/// A row with a snapshot, an update (with `changed_from`) and a delete, all sealed.
async fn erasure_fixture() -> (TestDb, Threadline) {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE people (id bigint PRIMARY KEY, email text, name text);
         INSERT INTO people VALUES (1, 'alice@example.com', 'Alice'), (2, 'bob@example.com', 'Bob');",
    )
    .await;
    db.audit("people", &TableCapture::default().store_changed_from(true))
        .await;
    threadline_sqlx::snapshot_table(
        &db.pool,
        &InstallOptions::default(),
        &Config::default(),
        &"people".parse().unwrap(),
        &SnapshotOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    write(
        &db.pool,
        "UPDATE people SET email = 'alice@new.example.com', name = 'Alice B' WHERE id = 1",
    )
    .await;
    write(&db.pool, "DELETE FROM people WHERE id = 1").await;
    let threadline = Threadline::new(db.pool.clone());
    sealed(&threadline).await;
    (db, threadline)
}

#[tokio::test]
async fn erasure_masks_every_image_records_the_erasure_and_keeps_verification_green() {
    let (db, threadline) = erasure_fixture().await;
    let admin = ActorRef::parse_short("admin:7").unwrap();
    let options = EraseOptions::new("GDPR art. 17 request 1234").columns(["email"]);

    // The plan changes nothing.
    let plan = threadline.plan_erase("people", 1, &options).await.unwrap();
    assert_eq!(plan.captured_changes, 3);
    assert_eq!(
        plan.steps.iter().map(|s| s.op.as_str()).collect::<Vec<_>>(),
        ["snapshot", "update", "delete"]
    );
    assert_eq!(plan.key, Some(json!({"id": 1})));
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes WHERE data_after::text LIKE '%alice@%' OR data_before::text LIKE '%alice@%' OR changed_from::text LIKE '%alice@%'").await, 3);

    let done = threadline
        .erase("people", 1, &options, &admin)
        .await
        .unwrap();
    let action = done.action.unwrap();
    assert_eq!(done.plan.steps.len(), 3);
    // No image holds the email any more, in any column; the name and the other row stay.
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes WHERE (data_after::text || coalesce(data_before::text, '') || coalesce(changed_from::text, '')) LIKE '%alice@%'").await, 0);
    let images: Vec<(Option<Value>, Option<Value>, Option<Value>)> = sqlx::query_as(
        "SELECT data_after, data_before, changed_from FROM audit_changes WHERE table_pk = '{\"id\": 1}' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(images[0].0.as_ref().unwrap()["email"], "[REDACTED]");
    assert_eq!(images[0].0.as_ref().unwrap()["name"], "Alice");
    assert_eq!(images[1].0.as_ref().unwrap()["email"], "[REDACTED]");
    assert_eq!(images[1].2.as_ref().unwrap()["email"], "[REDACTED]");
    assert_eq!(images[1].2.as_ref().unwrap()["name"], "Alice");
    assert_eq!(images[2].1.as_ref().unwrap()["email"], "[REDACTED]");
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM audit_changes WHERE data_after->>'email' = 'bob@example.com'"
        )
        .await,
        1
    );

    // Who, when, why and which changes: recorded, never the values.
    assert_eq!(action.name, "threadline.erase");
    assert_eq!(action.reason.as_deref(), Some("GDPR art. 17 request 1234"));
    assert_eq!(action.actor_ref, json!({"type": "admin", "id": "7"}));
    let comment = action.comment.clone().unwrap();
    assert!(!comment.contains("alice"), "{comment}");
    let comment: Value = serde_json::from_str(&comment).unwrap();
    assert_eq!(comment["columns"], json!(["email"]));
    assert_eq!(comment["changes"].as_array().unwrap().len(), 3);
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM audit_erasures WHERE action_id = {}",
            action.id
        ))
        .await,
        3
    );
    let erase_tx = action.transaction_id.unwrap();
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM audit_transactions WHERE id = {erase_tx} AND actor_ref->>'id' = '7'")).await,
        1
    );

    // Verification stays green, reporting the erased changes; the erasure is sealed next.
    let v = threadline.verify_seals(None).await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!(v.erased.len(), 3);
    assert!(v.erased.iter().all(|e| e.action_id == action.id));
    let next = sealed(&threadline).await;
    assert_eq!(next.action_count, 1);
    assert!(threadline.verify_seals(None).await.unwrap().is_ok());

    // Erasing it again, or a row never captured: nothing to do, nothing recorded.
    let again = threadline
        .erase("people", 1, &options, &admin)
        .await
        .unwrap();
    assert!(again.plan.is_noop() && again.action.is_none());
    assert!(
        again.plan.render().contains("already erased"),
        "{}",
        again.plan.render()
    );
    let never = threadline
        .erase("people", 99, &options, &admin)
        .await
        .unwrap();
    assert!(never.plan.is_noop() && never.plan.captured_changes == 0);
    assert!(
        never.plan.render().contains("was ever captured"),
        "{}",
        never.plan.render()
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_actions WHERE name = 'threadline.erase'")
            .await,
        1
    );

    // A key column cannot be erased.
    let e = threadline
        .plan_erase(
            "people",
            1,
            &EraseOptions::new("x").columns(["id", "email"]),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::EraseKeyColumn { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("key column(s) id of public.people cannot be erased"),
        "{e}"
    );
    let e = threadline
        .plan_erase("people", 1, &EraseOptions::new(" "))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("needs a reason"), "{e}");

    // An erased change modified afterwards is still caught, and so is a forged record.
    db.exec("UPDATE audit_changes SET data_after = data_after || '{\"name\": \"Mallory\"}' WHERE op = 'snapshot' AND table_pk = '{\"id\": 1}'").await;
    let v = threadline.verify_seals(None).await.unwrap();
    assert!(
        matches!(
            v.problems.as_slice(),
            [SealProblem::Modified { kind: "change", .. }]
        ),
        "{:?}",
        v.problems
    );
    db.exec("UPDATE audit_erasures SET digest = sha256('x')")
        .await;
    let v = threadline.verify_seals(None).await.unwrap();
    assert_eq!(
        v.problems[0],
        SealProblem::ErasureRecordAltered {
            action_id: action.id
        }
    );
}

#[tokio::test]
async fn erasure_by_default_masks_every_non_key_column() {
    let (db, threadline) = erasure_fixture().await;
    let plan = threadline
        .plan_erase("people", 1, &EraseOptions::new("request 1"))
        .await
        .unwrap();
    assert_eq!(plan.columns, ["email", "name"]);
    assert_eq!(plan.key_columns, ["id"]);
    let done = threadline
        .erase(
            "people",
            "1",
            &EraseOptions::new("request 1"),
            &ActorRef::user("1").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(done.plan.steps.len(), 3);
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes WHERE (coalesce(data_after::text, '') || coalesce(data_before::text, '') || coalesce(changed_from::text, '')) LIKE '%Alice%'").await, 0);
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes WHERE table_pk = '{\"id\": 1}' AND coalesce(data_after, data_before)->>'id' = '1'").await, 3);
    assert!(threadline.verify_seals(None).await.unwrap().is_ok());
}

#[tokio::test]
async fn after_a_purge_verification_starts_from_the_oldest_retained_seal() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE people (id bigint PRIMARY KEY, email text)")
        .await;
    db.audit("people", &TableCapture::default()).await;
    let threadline = Threadline::new(db.pool.clone());
    write(&db.pool, "INSERT INTO people VALUES (1, 'a'), (2, 'b')").await;
    let standalone = threadline
        .record_action(
            "old.report",
            &ActorRef::user("1").unwrap(),
            ActionOptions::new(),
        )
        .await
        .unwrap();
    assert!(standalone.transaction_id.is_none());
    // Old rows: backdated before they are sealed.
    db.exec("UPDATE audit_changes SET captured_at = now() - interval '40 days'; UPDATE audit_transactions SET occurred_at = now() - interval '40 days'").await;
    sealed(&threadline).await;
    write(&db.pool, "INSERT INTO people VALUES (3, 'c')").await;
    sealed(&threadline).await;

    let policy = RetentionPolicy::keep_days(30).unwrap().enabled(true);
    let report = threadline_sqlx::purge(
        &db.pool,
        &InstallOptions::default(),
        &policy,
        &PurgeOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((report.deleted_changes, report.purged_seals), (2, 1));
    let seals = threadline.seals().await.unwrap();
    assert!(seals[0].purged_at.is_some() && seals[1].purged_at.is_none());
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_seal_items WHERE seal_id = 1")
            .await,
        0
    );
    let v = threadline.verify_seals(None).await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!(
        (v.purged_through, v.first_verified, v.changes),
        (Some(1), Some(2), 1)
    );
    // A purge with nothing to delete marks nothing more.
    let report = threadline_sqlx::purge(
        &db.pool,
        &InstallOptions::default(),
        &policy,
        &PurgeOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.purged_seals, 0);
}

#[tokio::test]
async fn an_action_unlinked_by_a_purge_still_verifies() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE people (id bigint PRIMARY KEY, email text)")
        .await;
    db.audit("people", &TableCapture::default()).await;
    let threadline = Threadline::new(db.pool.clone());
    let t = write(&db.pool, "INSERT INTO people VALUES (1, 'a')").await;
    db.exec("UPDATE audit_changes SET captured_at = now() - interval '40 days'")
        .await;
    sealed(&threadline).await;
    // Recorded after the transaction committed, linked to it (as #[audited] does): a later seal.
    threadline
        .record_action(
            "people.created",
            &ActorRef::user("1").unwrap(),
            ActionOptions::new().transaction_id(t),
        )
        .await
        .unwrap();
    sealed(&threadline).await;
    let policy = RetentionPolicy::keep_days(30).unwrap().enabled(true);
    threadline_sqlx::purge(
        &db.pool,
        &InstallOptions::default(),
        &policy,
        &PurgeOptions::default(),
    )
    .await
    .unwrap();
    let v = threadline.verify_seals(None).await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!((v.first_verified, v.unlinked_actions), (Some(2), 1));
}

#[tokio::test]
async fn the_partitioned_layout_seals_verifies_and_erases() {
    let db = TestDb::installed_partitioned(threadline_sqlx::PartitionInterval::Month).await;
    db.exec("CREATE TABLE people (id bigint PRIMARY KEY, email text)")
        .await;
    db.audit("people", &TableCapture::default()).await;
    let threadline = Threadline::new(db.pool.clone());
    write(&db.pool, "INSERT INTO people VALUES (1, 'a@x'), (2, 'b@x')").await;
    write(&db.pool, "UPDATE people SET email = 'c@x' WHERE id = 1").await;
    let seal = sealed(&threadline).await;
    assert_eq!((seal.transaction_count, seal.change_count), (2, 3));
    threadline
        .erase(
            "people",
            1,
            &EraseOptions::new("r"),
            &ActorRef::user("1").unwrap(),
        )
        .await
        .unwrap();
    let v = threadline.verify_seals(None).await.unwrap();
    assert!(v.is_ok(), "{:?}", v.problems);
    assert_eq!(v.erased.len(), 2);
    db.exec("UPDATE audit_changes SET op = 'delete' WHERE table_pk = '{\"id\": 2}'")
        .await;
    let v = threadline.verify_seals(None).await.unwrap();
    assert!(
        matches!(
            v.problems.as_slice(),
            [SealProblem::Modified { kind: "change", .. }]
        ),
        "{:?}",
        v.problems
    );
}
