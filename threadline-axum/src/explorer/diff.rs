//! Diffs between consecutive versions of one row.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use threadline_core::{AuditChange, ChangeOp, DiffValue, FieldDiff, change_diff};
use threadline_sqlx::PreviousImage;

/// Before-values of one change that come from the row's previous image rather than from the
/// change itself.
pub(super) struct Derived {
    /// The earlier change whose image supplied them.
    pub(super) from_change: i64,
    /// Per field of the diff: whether its before-value is derived.
    pub(super) fields: Vec<bool>,
}

/// The change's diff. An update stored without `changed_from` has no before-values
/// ("not captured"); with the row's `previous` image, each of them that the image holds is
/// taken from it instead, and marked as derived.
pub(super) fn diff_with_previous(
    change: &AuditChange,
    previous: Option<&PreviousImage>,
) -> (Vec<FieldDiff>, Option<Derived>) {
    let mut diff = change_diff(change);
    let Some(previous) = previous else {
        return (diff, None);
    };
    let fields: Vec<bool> = diff
        .iter_mut()
        .map(|field| {
            let old = previous.image.get(&field.name);
            match (&field.before, old) {
                (DiffValue::NotCaptured, Some(old)) => {
                    field.before = DiffValue::Value(old.clone());
                    true
                }
                _ => false,
            }
        })
        .collect();
    let derived = fields.contains(&true).then_some(Derived {
        from_change: previous.change_id,
        fields,
    });
    (diff, derived)
}

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
    fn only_not_captured_before_values_are_derived_from_the_previous_image() {
        let mut update = change(
            2,
            ChangeOp::Update,
            Some(json!({"id": 1, "title": "b"})),
            None,
        );
        update.changed_fields = Some(vec!["title".into()]);
        let previous = PreviousImage {
            change_id: 1,
            image: json!({"id": 1, "title": "a"}),
        };
        let (diff, derived) = diff_with_previous(&update, Some(&previous));
        let derived = derived.unwrap();
        assert_eq!(derived.from_change, 1);
        assert_eq!(derived.fields, vec![true]);
        assert_eq!(diff[0].before, DiffValue::Value(json!("a")));
        // Without an earlier image, the value stays "not captured".
        let (diff, derived) = diff_with_previous(&update, None);
        assert!(derived.is_none());
        assert_eq!(diff[0].before, DiffValue::NotCaptured);
        // With changed_from stored, nothing is derived.
        update.changed_from = Some(json!({"title": "z"}));
        let (diff, derived) = diff_with_previous(&update, Some(&previous));
        assert!(derived.is_none());
        assert_eq!(diff[0].before, DiffValue::Value(json!("z")));
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
