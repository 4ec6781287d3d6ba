//! Snapshot tests of generated SQL, and the drift check of the canonical migration.

use threadline_core::{
    CapturePlan, Ident, InstallOptions, TableCapture, TruncateCapture, install_sql,
};

fn ident(s: &str) -> Ident {
    Ident::new(s).unwrap()
}

#[test]
fn install_sql_snapshot() {
    insta::assert_snapshot!("install_public", install_sql(&InstallOptions::default()));
}

#[test]
fn install_sql_in_custom_schema_quotes_it_everywhere() {
    let sql = install_sql(&InstallOptions::with_schema(ident("Audit Log")));
    assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "Audit Log".audit_changes"#));
    assert!(!sql.contains("\"public\""));
}

#[test]
fn capture_sql_snapshot_with_full_policy() {
    let policy = TableCapture::default()
        .exclude(["password_hash"])
        .mask(["email"])
        .except_columns(["updated_at"])
        .store_changed_from(true);
    let plan = CapturePlan::new(
        &InstallOptions::default(),
        "users".parse().unwrap(),
        Some(vec![ident("id")]),
        Some(
            ["id", "email", "password_hash", "name", "updated_at"]
                .map(ident)
                .to_vec(),
        ),
        &policy,
    )
    .unwrap();
    insta::assert_snapshot!("capture_users", plan.sql());
}

/// `truncate = "images"`: the refusal over the limit, the redacted `delete` images, then the
/// `truncate` change; only the TRUNCATE branch is snapshotted (the rest is as above).
#[test]
fn capture_sql_snapshot_truncate_images() {
    let policy = TableCapture::default()
        .mask(["email"])
        .truncate(TruncateCapture::Images)
        .truncate_row_limit(500);
    let plan = CapturePlan::new(
        &InstallOptions::default(),
        "users".parse().unwrap(),
        Some(vec![ident("id")]),
        None,
        &policy,
    )
    .unwrap();
    let sql = plan.sql();
    let start = sql.find("    ELSIF TG_OP = 'TRUNCATE'").unwrap();
    let end = start + sql[start..].find("    ELSIF TG_OP = 'UPDATE'").unwrap();
    insta::assert_snapshot!("capture_truncate_images", &sql[start..end]);
    assert!(sql.contains("\"truncate\":\"images\",\"truncate_row_limit\":500"));
}

#[test]
fn capture_sql_snapshot_composite_key_offline() {
    let plan = CapturePlan::new(
        &InstallOptions::default(),
        r#"Sales."Order Lines""#.parse().unwrap(),
        Some(vec![ident("tenant_id"), ident("sku")]),
        None,
        &TableCapture::default().mask_placeholder("it's hidden"),
    )
    .unwrap();
    insta::assert_snapshot!("capture_composite", plan.sql());
}

#[test]
fn canonical_migration_matches_generator() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("_threadline_install.sql") {
            found.push(path);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "expected exactly one *_threadline_install.sql in migrations/"
    );
    let on_disk = std::fs::read_to_string(&found[0]).unwrap();
    assert_eq!(
        on_disk,
        install_sql(&InstallOptions::default()),
        "migrations/ drifted from the generator; regenerate with `cargo run -p threadline-cli -- install --stdout > {}`",
        found[0].display()
    );
}

fn hardened() -> InstallOptions {
    InstallOptions::with_schema(ident("audit"))
        .with_owner_role(ident("threadline_owner"))
        .with_reader_role(ident("app"))
}

#[test]
fn hardened_install_sql_snapshot() {
    let sql = install_sql(&hardened());
    // Hardening only appends statements: the default output is a prefix of it.
    let plain = install_sql(&InstallOptions::with_schema(ident("audit")));
    assert!(sql.starts_with(&plain));
    insta::assert_snapshot!("install_hardened", &sql[plain.len()..]);
}

#[test]
fn hardened_capture_sql_snapshot() {
    let plan = |install: &InstallOptions| {
        CapturePlan::new(
            install,
            "posts".parse().unwrap(),
            Some(vec![ident("id")]),
            None,
            &TableCapture::default(),
        )
        .unwrap()
    };
    let hardened = plan(&hardened());
    let plain = plan(&InstallOptions::with_schema(ident("audit")));
    assert_eq!(
        hardened.stamp(),
        plain.stamp(),
        "hardening never changes the function"
    );
    insta::assert_snapshot!("capture_hardened", hardened.sql());
}

#[test]
fn snapshot_batch_sql_snapshot_composite_key_with_redaction() {
    let plan = CapturePlan::new(
        &InstallOptions::default(),
        r#"Sales."Order Lines""#.parse().unwrap(),
        Some(vec![ident("tenant_id"), ident("sku")]),
        None,
        &TableCapture::default().exclude(["cost"]).mask(["note"]),
    )
    .unwrap();
    insta::assert_snapshot!("snapshot_composite", plan.snapshot_batch_sql());
}

#[test]
fn begin_with_context_sql_snapshot() {
    use threadline_core::{ActorRef, AuditContext, sql::begin_with_context_sql};
    let ctx = AuditContext::for_actor(ActorRef::user(r"o'brien\x").unwrap())
        .with_request_id("req-1")
        .with_correlation_id("it's")
        .with_remote_ip("192.0.2.7".parse().unwrap())
        .with_source("web")
        .with_meta(serde_json::json!({"note": "a\\b'c\nd"}));
    insta::assert_snapshot!("begin_with_context", begin_with_context_sql(&ctx));
}

/// The explorer's two statements: the previous version of each change of a page (one row is a
/// truncate, which is never looked up), and the activity chart's counts for a filter.
#[test]
fn explorer_queries_sql_snapshot() {
    use chrono::{TimeZone, Utc};
    use threadline_core::query::{self, ActivityWindow, TimelineFilter};
    use threadline_core::{AuditChange, ChangeOp};
    let at = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
    let change = |id: i64, op: ChangeOp, pk: serde_json::Value| AuditChange {
        id,
        transaction_id: 9,
        table_schema: "public".into(),
        table_name: "posts".into(),
        table_pk: pk,
        op,
        data_after: None,
        data_before: None,
        changed_fields: None,
        changed_from: None,
        captured_at: at,
        actor_ref: None,
    };
    let update = change(7, ChangeOp::Update, serde_json::json!({"id": 1}));
    let truncate = change(8, ChangeOp::Truncate, serde_json::json!({}));
    let previous = query::previous_changes(&ident("audit"), &[&update, &truncate]);
    let filter = TimelineFilter::new()
        .table("posts".parse().unwrap())
        .actor(threadline_core::ActorRef::user("42").unwrap());
    let window = ActivityWindow::for_filter(&filter, at);
    let activity = query::activity(&ident("audit"), &filter, &window).unwrap();
    insta::assert_snapshot!(
        "explorer_queries",
        format!(
            "{}\n{:?}\n\n{}\n{:?}",
            previous.sql, previous.params, activity.sql, activity.params
        )
    );
}

mod partitioned {
    use chrono::{TimeZone, Utc};
    use threadline_core::partition::{
        PartitionInterval, PartitionRange, PartitionedTable, RetiredPartition,
        create_partition_sql, move_from_default_sql, retire_partition_sql,
    };
    use threadline_core::{InstallManifest, InstallOptions, install_sql};

    use super::ident;

    fn december() -> PartitionRange {
        PartitionRange::containing(
            PartitionedTable::Changes,
            PartitionInterval::Month,
            Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap(),
        )
    }

    #[test]
    fn partitioned_install_sql_snapshot() {
        let options = InstallOptions::default().with_partitioning(PartitionInterval::Month);
        let sql = install_sql(&options);
        assert!(sql.contains("PARTITION BY RANGE (captured_at)"));
        assert!(sql.contains("PARTITION BY RANGE (occurred_at)"));
        assert!(
            !sql.contains("REFERENCES"),
            "no foreign key to a partitioned table"
        );
        // The functions capture calls are the same in both layouts.
        let plain = InstallManifest::of(&InstallOptions::default());
        let parted = InstallManifest::of(&options);
        for f in &plain.functions {
            assert!(parted.functions.contains(f), "{}", f.0);
        }
        assert_eq!(plain.tables, parted.tables, "same tables and columns");
        assert_eq!(plain.indexes, parted.indexes, "same indexes");
        insta::assert_snapshot!("install_partitioned", sql);
    }

    #[test]
    fn partition_maintenance_sql_snapshot() {
        let schema = ident("Audit Log");
        let owner = ident("threadline_owner");
        let sql = format!(
            "-- create\n{}\n-- move out of DEFAULT\n{}\n-- retire\n{}{}",
            create_partition_sql(&schema, &december(), &owner),
            move_from_default_sql(&schema, &december(), &owner),
            retire_partition_sql(&schema, &december(), RetiredPartition::Drop),
            retire_partition_sql(&schema, &december(), RetiredPartition::Detach),
        );
        insta::assert_snapshot!("partition_maintenance", sql);
    }
}

#[test]
fn replication_sql_snapshot() {
    let name = ident("threadline_audit");
    let sql = threadline_core::sql::replication_sql(
        &InstallOptions::default(),
        &name,
        &name,
        "host=db1 dbname=app user=o'brien",
    );
    insta::assert_snapshot!(
        "replication",
        format!("{}\n{}", sql.publication, sql.subscription)
    );
    assert!(
        sql.reporting_schema
            .contains(&install_sql(&InstallOptions::default()))
    );
}

#[test]
fn partition_convert_sql_snapshot() {
    use chrono::TimeZone;
    use threadline_core::partition::{
        ConvertedTable, PartitionInterval, PartitionRange, PartitionedTable, convert_prepare_sql,
        convert_switch_sql,
    };
    let range = |table| PartitionRange {
        table,
        from: chrono::Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
        to: chrono::Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
    };
    let tables = [
        ConvertedTable {
            range: range(PartitionedTable::Transactions),
            primary_key: "audit_transactions_pkey".into(),
            indexes: vec!["audit_transactions_actor_ref_idx".into()],
            next_id: 1001,
            owner: ident("app_owner"),
        },
        ConvertedTable {
            range: range(PartitionedTable::Changes),
            primary_key: "audit_changes_pkey".into(),
            indexes: vec!["audit_changes_row_idx".into()],
            next_id: 10001,
            owner: ident("app_owner"),
        },
    ];
    let install = InstallOptions::default();
    let switch = convert_switch_sql(
        &install,
        PartitionInterval::Month,
        &tables,
        &["audit_actions_transaction_id_fkey".into()],
    );
    // The install in the middle is snapshotted on its own; keep what surrounds it.
    let partitioned = install_sql(&install.clone().with_partitioning(PartitionInterval::Month));
    let (head, tail) = switch.split_once(&partitioned).unwrap();
    let prepare = convert_prepare_sql(&install.schema, &tables[1].range).join(";\n");
    insta::assert_snapshot!(
        "partition_convert",
        format!("{prepare}\n-- switch\n{head}-- (partitioned install)\n{tail}")
    );
}

/// The timeline and count statements: by actor (the `actor_key` index, each change's actor
/// looked up per change), by request id (transactions first, through the join), and the
/// count of a filter without a transaction condition (no join).
#[test]
fn timeline_queries_sql_snapshot() {
    use threadline_core::ActorRef;
    use threadline_core::query::{self, Page, TimelineFilter};
    let by_actor = TimelineFilter::new().actor(ActorRef::user("42").unwrap());
    let by_request = TimelineFilter::new().request_id("req-1");
    let by_table = TimelineFilter::new().table("posts".parse().unwrap());
    let sqls = [
        query::timeline(&ident("audit"), &by_actor, &Page::first())
            .unwrap()
            .statement
            .sql,
        query::timeline(&ident("audit"), &by_request, &Page::first())
            .unwrap()
            .statement
            .sql,
        query::count(&ident("audit"), &by_table).unwrap().sql,
    ];
    insta::assert_snapshot!("timeline_queries", sqls.join("\n\n"));
}
