//! Per-field before/after view of one change ([`change_diff`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{AuditChange, ChangeOp};

/// One side of a field's change.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", content = "value", rename_all = "snake_case")]
pub enum DiffValue {
    /// The stored (redacted) value; a masked column shows its placeholder.
    Value(Value),
    /// The row did not exist on this side (before an insert, after a delete).
    Absent,
    /// The value was not stored: an update of a table without `store_changed_from`.
    NotCaptured,
}

impl DiffValue {
    /// The value, when one was stored.
    pub fn value(&self) -> Option<&Value> {
        match self {
            DiffValue::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// One field of a change: its name and both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// Column name.
    pub name: String,
    /// Value before the change.
    pub before: DiffValue,
    /// Value after the change.
    pub after: DiffValue,
}

/// Options for [`change_diff_with`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffOptions {
    /// List every column of an insert or snapshot (`Absent` → value). Default true; when
    /// false, inserts and snapshots give an empty list.
    pub expand_inserts: bool,
    /// List every column of a delete (value → `Absent`). Default true.
    pub expand_deletes: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            expand_inserts: true,
            expand_deletes: true,
        }
    }
}

impl DiffOptions {
    /// Sets [`expand_inserts`](Self::expand_inserts).
    #[must_use]
    pub fn expand_inserts(mut self, on: bool) -> Self {
        self.expand_inserts = on;
        self
    }

    /// Sets [`expand_deletes`](Self::expand_deletes).
    #[must_use]
    pub fn expand_deletes(mut self, on: bool) -> Self {
        self.expand_deletes = on;
        self
    }
}

/// The per-field before/after list of a change, with inserts and deletes expanded.
///
/// * update: one entry per `changed_fields` name, in that (sorted) order; `before` comes from
///   `changed_from` when the table stores it, else it is [`DiffValue::NotCaptured`];
/// * insert and snapshot: every column of `data_after`, `before` = [`DiffValue::Absent`];
/// * delete: every column of `data_before`, `after` = [`DiffValue::Absent`].
///
/// ```
/// use threadline_core::{AuditChange, ChangeOp, DiffValue, change_diff};
/// use serde_json::json;
/// let change = AuditChange {
///     id: 1, transaction_id: 1, table_schema: "public".into(), table_name: "posts".into(),
///     table_pk: json!({"id": 42}), op: ChangeOp::Update,
///     data_after: Some(json!({"id": 42, "title": "New", "views": 3})),
///     data_before: None, changed_fields: Some(vec!["title".into()]),
///     changed_from: Some(json!({"title": "Old"})),
///     captured_at: chrono::Utc::now(), actor_ref: None,
/// };
/// let diff = change_diff(&change);
/// assert_eq!(diff.len(), 1);
/// assert_eq!(diff[0].name, "title");
/// assert_eq!(diff[0].before, DiffValue::Value(json!("Old")));
/// assert_eq!(diff[0].after, DiffValue::Value(json!("New")));
/// ```
pub fn change_diff(change: &AuditChange) -> Vec<FieldDiff> {
    change_diff_with(change, DiffOptions::default())
}

/// [`change_diff`] with options.
pub fn change_diff_with(change: &AuditChange, options: DiffOptions) -> Vec<FieldDiff> {
    match change.op {
        ChangeOp::Update => update_diff(change),
        ChangeOp::Insert | ChangeOp::Snapshot if options.expand_inserts => {
            expand(change.data_after.as_ref(), |v| (DiffValue::Absent, v))
        }
        ChangeOp::Delete if options.expand_deletes => {
            expand(change.data_before.as_ref(), |v| (v, DiffValue::Absent))
        }
        _ => Vec::new(),
    }
}

fn update_diff(change: &AuditChange) -> Vec<FieldDiff> {
    let from = change.changed_from.as_ref().and_then(Value::as_object);
    let names: Vec<String> = match (&change.changed_fields, from) {
        (Some(fields), _) => fields.clone(),
        (None, Some(from)) => from.keys().cloned().collect(),
        (None, None) => Vec::new(),
    };
    let after = change.data_after.as_ref().and_then(Value::as_object);
    names
        .into_iter()
        .map(|name| {
            let before = match from {
                Some(from) => from
                    .get(&name)
                    .cloned()
                    .map_or(DiffValue::NotCaptured, DiffValue::Value),
                None => DiffValue::NotCaptured,
            };
            let after = after
                .and_then(|a| a.get(&name))
                .cloned()
                .map_or(DiffValue::Absent, DiffValue::Value);
            FieldDiff {
                name,
                before,
                after,
            }
        })
        .collect()
}

fn expand(
    image: Option<&Value>,
    sides: impl Fn(DiffValue) -> (DiffValue, DiffValue),
) -> Vec<FieldDiff> {
    let Some(object) = image.and_then(Value::as_object) else {
        return Vec::new();
    };
    object
        .iter()
        .map(|(name, value)| {
            let (before, after) = sides(DiffValue::Value(value.clone()));
            FieldDiff {
                name: name.clone(),
                before,
                after,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(op: ChangeOp) -> AuditChange {
        AuditChange {
            id: 1,
            transaction_id: 1,
            table_schema: "public".into(),
            table_name: "posts".into(),
            table_pk: json!({"id": 1}),
            op,
            data_after: None,
            data_before: None,
            changed_fields: None,
            changed_from: None,
            captured_at: chrono::DateTime::UNIX_EPOCH,
            actor_ref: None,
        }
    }

    fn v(value: Value) -> DiffValue {
        DiffValue::Value(value)
    }

    #[test]
    fn update_without_changed_from_marks_before_as_not_captured() {
        let mut c = change(ChangeOp::Update);
        c.data_after = Some(json!({"id": 1, "title": "b", "views": 2}));
        c.changed_fields = Some(vec!["title".into(), "views".into()]);
        let diff = change_diff(&c);
        assert_eq!(
            diff,
            vec![
                FieldDiff {
                    name: "title".into(),
                    before: DiffValue::NotCaptured,
                    after: v(json!("b"))
                },
                FieldDiff {
                    name: "views".into(),
                    before: DiffValue::NotCaptured,
                    after: v(json!(2))
                },
            ]
        );
    }

    #[test]
    fn update_with_changed_from_gives_both_sides_including_null() {
        let mut c = change(ChangeOp::Update);
        c.data_after = Some(json!({"id": 1, "title": null, "email": "[REDACTED]"}));
        c.changed_fields = Some(vec!["email".into(), "title".into()]);
        c.changed_from = Some(json!({"title": "a", "email": "[REDACTED]"}));
        let diff = change_diff(&c);
        assert_eq!(diff[0].name, "email");
        assert_eq!(diff[0].before, v(json!("[REDACTED]")));
        assert_eq!(diff[1].before, v(json!("a")));
        assert_eq!(diff[1].after, v(Value::Null));
    }

    #[test]
    fn inserts_and_deletes_expand_unless_disabled() {
        let mut ins = change(ChangeOp::Insert);
        ins.data_after = Some(json!({"id": 1, "title": "a"}));
        let diff = change_diff(&ins);
        assert_eq!(diff.len(), 2);
        assert!(diff.iter().all(|f| f.before == DiffValue::Absent));
        assert_eq!(diff[1].after, v(json!("a")));
        assert!(change_diff_with(&ins, DiffOptions::default().expand_inserts(false)).is_empty());

        let mut del = change(ChangeOp::Delete);
        del.data_before = Some(json!({"id": 1, "title": "a"}));
        let diff = change_diff(&del);
        assert_eq!(diff[1].before, v(json!("a")));
        assert_eq!(diff[1].after, DiffValue::Absent);
        assert!(change_diff_with(&del, DiffOptions::default().expand_deletes(false)).is_empty());

        let mut snap = change(ChangeOp::Snapshot);
        snap.data_after = Some(json!({"id": 1}));
        assert_eq!(change_diff(&snap)[0].after, v(json!(1)));
    }

    #[test]
    fn missing_images_give_empty_lists() {
        assert!(change_diff(&change(ChangeOp::Insert)).is_empty());
        assert!(change_diff(&change(ChangeOp::Delete)).is_empty());
        assert!(change_diff(&change(ChangeOp::Update)).is_empty());
    }
}
