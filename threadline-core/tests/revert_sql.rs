//! Snapshot tests of the SQL a revert plan runs.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use serde_json::json;
use threadline_core::revert::{ColumnInfo, PriorValues, RevertTarget, TableState, build_plan};
use threadline_core::{AuditChange, ChangeOp, Ident, TableCapture};

fn change(id: i64, op: ChangeOp) -> AuditChange {
    let row = json!({"order_id": 1, "line": 2, "qty": 5, "note": "x", "total": 10});
    AuditChange {
        id,
        transaction_id: 9,
        table_schema: "sales".into(),
        table_name: "Order Lines".into(),
        table_pk: json!({"order_id": 1, "line": 2}),
        op,
        data_after: (op != ChangeOp::Delete).then(|| row.clone()),
        data_before: (op == ChangeOp::Delete).then(|| row.clone()),
        changed_fields: (op == ChangeOp::Update).then(|| vec!["qty".into(), "total".into()]),
        changed_from: (op == ChangeOp::Update).then(|| json!({"qty": 4, "total": 8})),
        captured_at: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        actor_ref: None,
    }
}

#[test]
fn each_step_kind_snapshot() {
    let col = |name: &str, generated: bool| ColumnInfo {
        name: name.into(),
        generated,
        identity_always: false,
    };
    let state = TableState {
        columns: vec![
            col("order_id", false),
            col("line", false),
            col("qty", false),
            col("note", false),
            col("total", true),
        ],
        audited: true,
        policy: Some(TableCapture::default().store_changed_from(true)),
    };
    let tables = BTreeMap::from([(("sales".to_owned(), "Order Lines".to_owned()), state)]);
    let changes = [
        change(1, ChangeOp::Insert),
        change(2, ChangeOp::Update),
        change(3, ChangeOp::Delete),
    ];
    let priors = BTreeMap::from([(2, PriorValues::ChangedFrom)]);
    let plan = build_plan(
        &Ident::new("audit").unwrap(),
        RevertTarget::Transaction(9),
        &changes,
        &tables,
        &priors,
        &BTreeMap::new(),
    )
    .unwrap();
    assert!(plan.is_clean());
    insta::assert_snapshot!("revert_steps", plan.render());
}
