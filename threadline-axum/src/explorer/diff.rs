//! Diffs between consecutive versions of one row.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use threadline_core::{AuditChange, ChangeOp, DiffValue, FieldDiff, change_diff};

/// For each change of a row's history (newest first), the fields that differ from the
/// version before it (the next, older, entry).
///
/// Where the older version's image is known, both sides come from the two images, so an
/// update shows its old values even when the table does not store `changed_from`; the
/// update's `changed_fields` are always listed (a masked column that changed has the same
/// placeholder on both sides). The oldest change, deletes, and changes that follow a
/// delete use [`change_diff`].
pub(super) fn version_diffs(history: &[AuditChange]) -> Vec<Vec<FieldDiff>> {
    history
        .iter()
        .enumerate()
        .map(|(i, change)| {
            let older = history.get(i + 1).filter(|c| c.op != ChangeOp::Delete);
            match (change.op, older.and_then(|c| c.data_after.as_ref())) {
                (ChangeOp::Delete, _) | (_, None) => change_diff(change),
                (_, Some(before)) => between(
                    before,
                    change.data_after.as_ref(),
                    change.changed_fields.as_deref().unwrap_or_default(),
                ),
            }
        })
        .collect()
}

fn between(before: &Value, after: Option<&Value>, changed: &[String]) -> Vec<FieldDiff> {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.and_then(Value::as_object).unwrap_or(&empty);
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let side = |image: &Map<String, Value>, name: &str| {
        image
            .get(name)
            .cloned()
            .map_or(DiffValue::Absent, DiffValue::Value)
    };
    names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name) || changed.contains(name))
        .map(|name| FieldDiff {
            name: name.clone(),
            before: side(before, name),
            after: side(after, name),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(id: i64, op: ChangeOp, after: Option<Value>, before: Option<Value>) -> AuditChange {
        AuditChange {
            id,
            transaction_id: id,
            table_schema: "public".into(),
            table_name: "posts".into(),
            table_pk: json!({"id": 1}),
            op,
            data_after: after,
            data_before: before,
            changed_fields: None,
            changed_from: None,
            captured_at: chrono::DateTime::UNIX_EPOCH,
            actor_ref: None,
        }
    }

    #[test]
    fn consecutive_images_give_old_values_without_changed_from() {
        let mut update = change(
            2,
            ChangeOp::Update,
            Some(json!({"id": 1, "title": "b", "email": "[REDACTED]"})),
            None,
        );
        update.changed_fields = Some(vec!["email".into(), "title".into()]);
        let history = vec![
            change(
                3,
                ChangeOp::Delete,
                None,
                Some(json!({"id": 1, "title": "b"})),
            ),
            update,
            change(
                1,
                ChangeOp::Insert,
                Some(json!({"id": 1, "title": "a", "email": "[REDACTED]"})),
                None,
            ),
        ];
        let diffs = version_diffs(&history);
        // The delete lists its last image.
        assert_eq!(diffs[0].len(), 2);
        assert!(diffs[0].iter().all(|f| f.after == DiffValue::Absent));
        // The update: the masked email (same placeholder both sides) and the title.
        assert_eq!(diffs[1].len(), 2);
        assert_eq!(diffs[1][0].name, "email");
        assert_eq!(diffs[1][1].before, DiffValue::Value(json!("a")));
        assert_eq!(diffs[1][1].after, DiffValue::Value(json!("b")));
        // The insert: every column, from nothing.
        assert_eq!(diffs[2].len(), 3);
        assert!(diffs[2].iter().all(|f| f.before == DiffValue::Absent));
    }
}
