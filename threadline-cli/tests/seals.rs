//! `threadline seal`, `threadline verify-seals` and `threadline erase`: output and exit codes.

mod support;

use support::{config, db_with_items, run, seal, stdout_of, threadline_on};

#[tokio::test]
async fn seal_verify_and_head_then_a_tampering_exits_1_naming_the_change() {
    let db = db_with_items().await;
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "");
    let out = stdout_of(threadline_on(&db, dir.path()).arg("seal"));
    assert!(out.contains("nothing to seal"), "{out}");
    db.exec("INSERT INTO items VALUES (1, 'a'), (2, 'b')").await;
    db.exec("UPDATE items SET v = 'c' WHERE id = 2").await;
    let out = seal(&db, dir.path());
    assert!(
        out.starts_with("sealed seal 1: txids [0, ")
            && out.contains("2 transactions, 3 changes, 0 actions"),
        "{out}"
    );

    let out = stdout_of(threadline_on(&db, dir.path()).arg("verify-seals"));
    assert!(
        out.contains("verified seals 1 to 1: 2 transactions, 3 changes, 0 actions"),
        "{out}"
    );
    let head = stdout_of(threadline_on(&db, dir.path()).args(["verify-seals", "--head"]));
    let head = head.trim();
    assert!(
        head.len() == 64 && head.chars().all(|c| c.is_ascii_hexdigit()),
        "{head}"
    );
    assert!(out.contains(&format!("head: seal 1 {head}")), "{out}");

    let change = db.scalar("SELECT max(id) FROM audit_changes").await;
    let tx = db
        .scalar("SELECT max(transaction_id) FROM audit_changes")
        .await;
    db.exec(&format!(
        "UPDATE audit_changes SET data_after = '{{\"id\": 2, \"v\": \"z\"}}' WHERE id = {change}"
    ))
    .await;
    for args in [&["verify-seals"][..], &["verify-seals", "--head"]] {
        let (code, out, err) = run(threadline_on(&db, dir.path()).args(args));
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains(&format!(
                "seal 1: change {change} (transaction {tx}) was modified after it was sealed"
            )),
            "{err}"
        );
        assert!(
            !out.contains(head),
            "no head is printed for a failed chain: {out}"
        );
    }
    let (code, _, err) =
        run(threadline_on(&db, dir.path()).args(["verify-seals", "--from-seal", "5"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("seal 5 does not exist"), "{err}");
}

#[tokio::test]
async fn erase_plans_executes_and_refuses_key_columns() {
    let db = db_with_items().await;
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        "[capture.tables.items]\nmask_placeholder = \"[ERASED]\"\n",
    );
    db.exec("INSERT INTO items VALUES (42, 'personal')").await;
    db.exec("UPDATE items SET v = 'more personal' WHERE id = 42")
        .await;
    seal(&db, dir.path());
    let erase = [
        "erase",
        "--table",
        "items",
        "--pk",
        "42",
        "--reason",
        "request 9",
        "--actor",
        "admin:7",
    ];

    // Plan only: lists the changes, changes nothing.
    let out = stdout_of(threadline_on(&db, dir.path()).args(erase));
    assert!(
        out.contains("erase v of public.items {\"id\":42} in 2 of 2 captured change(s)"),
        "{out}"
    );
    assert!(out.contains("plan only"), "{out}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes WHERE data_after->>'v' LIKE '%personal'")
            .await,
        2
    );

    let out = stdout_of(threadline_on(&db, dir.path()).args(erase).arg("--execute"));
    assert!(
        out.contains("erased: 2 change(s) masked; recorded as action"),
        "{out}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes WHERE data_after->>'v' = '[ERASED]'")
            .await,
        2
    );
    assert_eq!(db.scalar("SELECT count(*) FROM audit_actions WHERE name = 'threadline.erase' AND reason = 'request 9' AND comment NOT LIKE '%personal%'").await, 1);
    let out = stdout_of(threadline_on(&db, dir.path()).arg("verify-seals"));
    assert!(
        out.contains("2 erased change(s) verified against the digests kept at seal time"),
        "{out}"
    );

    // Nothing left, or never captured: a clear no-op.
    let out = stdout_of(threadline_on(&db, dir.path()).args(erase).arg("--execute"));
    assert!(
        out.contains("nothing to erase") && out.contains("already erased"),
        "{out}"
    );
    let out = stdout_of(threadline_on(&db, dir.path()).args([
        "erase",
        "--table",
        "items",
        "--pk",
        "7",
        "--reason",
        "r",
        "--actor",
        "admin:7",
        "--execute",
    ]));
    assert!(
        out.contains("nothing to erase: no change of public.items with key 7 was ever captured"),
        "{out}"
    );

    // Bad input exits 2.
    let (code, _, err) = run(threadline_on(&db, dir.path()).args([
        "erase",
        "--table",
        "items",
        "--pk",
        "42",
        "--columns",
        "id",
        "--reason",
        "r",
        "--actor",
        "admin:7",
    ]));
    assert_eq!(code, 2);
    assert!(
        err.contains("key column(s) id of public.items cannot be erased"),
        "{err}"
    );
    let (code, _, err) = run(threadline_on(&db, dir.path()).args([
        "erase", "--table", "items", "--pk", "{bad", "--reason", "r", "--actor", "admin:7",
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("not a JSON object"), "{err}");
    let (code, _, err) = run(threadline_on(&db, dir.path()).args([
        "erase",
        "--table",
        "items",
        "--pk",
        "{\"id\":42}",
        "--reason",
        "r",
        "--actor",
        "nobody",
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("invalid --actor"), "{err}");
}
