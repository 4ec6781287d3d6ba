//! [`PrimaryKey`]: how `history` and `as_of` name one row.

use serde_json::{Map, Value};

use super::QueryError;

/// A row's primary key as given by the caller: a scalar (`42`, `"abc"`, a UUID string) for a
/// single-column key, or a JSON object for any key (`{"tenant_id": 7, "sku": "A-1"}`).
///
/// Matching rules (the stored `table_pk` keeps native JSON types, e.g. `{"id": 42}`):
///
/// * A scalar is matched against the table's one key column, whatever its name.
/// * An integer and its canonical decimal string are the same key: `42` and `"42"` both match
///   a stored `42` or a stored `"42"`. `"042"` and `"42.0"` are not integers here, and match
///   only the string.
/// * A UUID string matches in any letter case (PostgreSQL stores UUIDs in lower case).
/// * An object is matched exactly: its keys must be the table's key columns, and its values
///   must have the stored JSON types.
///
/// ```
/// use threadline_core::query::PrimaryKey;
/// use serde_json::json;
/// let key = PrimaryKey::from(42);
/// assert_eq!(key.candidates("posts", &["id".into()])?, vec![json!({"id": 42}), json!({"id": "42"})]);
/// let key = PrimaryKey::from(json!({"tenant_id": 7, "sku": "A-1"}));
/// assert_eq!(key.candidates("lines", &["sku".into(), "tenant_id".into()])?.len(), 1);
/// # Ok::<(), threadline_core::query::QueryError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryKey(Value);

macro_rules! from_scalar {
    ($($t:ty),*) => {$(
        impl From<$t> for PrimaryKey {
            fn from(v: $t) -> Self {
                PrimaryKey(Value::from(v))
            }
        }
    )*};
}
from_scalar!(i16, i32, i64, u16, u32, u64, &str, String, Map<String, Value>);

impl From<&String> for PrimaryKey {
    fn from(v: &String) -> Self {
        PrimaryKey(Value::from(v.as_str()))
    }
}

impl From<Value> for PrimaryKey {
    fn from(v: Value) -> Self {
        PrimaryKey(v)
    }
}

impl From<&Value> for PrimaryKey {
    fn from(v: &Value) -> Self {
        PrimaryKey(v.clone())
    }
}

impl PrimaryKey {
    /// The key as given.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// Refuses values that can never be a key (`null`, arrays).
    pub fn validate(&self) -> Result<(), QueryError> {
        match &self.0 {
            Value::Null | Value::Array(_) => Err(QueryError::KeyValue(format!(
                "{} is not a key value; pass a string, an integer or a JSON object of key columns",
                self.0
            ))),
            _ => Ok(()),
        }
    }

    /// The stored `table_pk` values this key matches, given the table's key columns (read
    /// from its audit rows). `table` is only used in error messages.
    pub fn candidates(
        &self,
        table: &str,
        key_columns: &[String],
    ) -> Result<Vec<Value>, QueryError> {
        self.validate()?;
        match &self.0 {
            Value::Object(object) => {
                let mut given: Vec<&str> = object.keys().map(String::as_str).collect();
                let mut expected: Vec<&str> = key_columns.iter().map(String::as_str).collect();
                given.sort_unstable();
                expected.sort_unstable();
                if given != expected {
                    return Err(QueryError::KeyColumns {
                        table: table.to_owned(),
                        expected: expected.join(", "),
                        given: given.join(", "),
                    });
                }
                Ok(vec![self.0.clone()])
            }
            scalar => {
                let [column] = key_columns else {
                    return Err(QueryError::CompositeKey {
                        table: table.to_owned(),
                        columns: key_columns.join(", "),
                    });
                };
                Ok(scalar_variants(scalar)
                    .into_iter()
                    .map(|v| {
                        let mut object = Map::new();
                        object.insert(column.clone(), v);
                        Value::Object(object)
                    })
                    .collect())
            }
        }
    }
}

/// The scalar, then the equivalent forms it also matches.
fn scalar_variants(value: &Value) -> Vec<Value> {
    let mut out = vec![value.clone()];
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => out.push(Value::from(n.to_string())),
        Value::String(s) => {
            if let Ok(n) = s.parse::<i64>() {
                if n.to_string() == *s {
                    out.push(Value::from(n));
                }
            } else if is_uuid(s) && s.chars().any(|c| c.is_ascii_uppercase()) {
                out.push(Value::from(s.to_ascii_lowercase()));
            }
        }
        _ => {}
    }
    out
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> Vec<String> {
        vec!["id".into()]
    }

    #[test]
    fn integers_and_their_strings_match_each_other() {
        assert_eq!(
            PrimaryKey::from("42").candidates("t", &id()).unwrap(),
            vec![json!({"id": "42"}), json!({"id": 42})]
        );
        assert_eq!(
            PrimaryKey::from(-7i64).candidates("t", &id()).unwrap(),
            vec![json!({"id": -7}), json!({"id": "-7"})]
        );
        for strict in ["042", "42.0", "+42", " 42", "abc"] {
            assert_eq!(
                PrimaryKey::from(strict).candidates("t", &id()).unwrap(),
                vec![json!({"id": strict})],
                "{strict}"
            );
        }
        assert_eq!(
            PrimaryKey::from(json!(1.5)).candidates("t", &id()).unwrap(),
            vec![json!({"id": 1.5})]
        );
    }

    #[test]
    fn uuids_match_in_any_case() {
        let upper = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11";
        assert_eq!(
            PrimaryKey::from(upper).candidates("t", &id()).unwrap(),
            vec![json!({"id": upper}), json!({"id": upper.to_lowercase()})]
        );
        let lower = upper.to_lowercase();
        assert_eq!(
            PrimaryKey::from(&lower)
                .candidates("t", &id())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn scalars_use_the_key_column_name() {
        let cols = vec!["uuid".to_owned()];
        assert_eq!(
            PrimaryKey::from("x").candidates("t", &cols).unwrap(),
            vec![json!({"uuid": "x"})]
        );
    }

    #[test]
    fn composite_keys_need_objects_with_exactly_the_key_columns() {
        let cols = vec!["sku".to_owned(), "tenant_id".to_owned()];
        let err = PrimaryKey::from(7).candidates("lines", &cols).unwrap_err();
        assert_eq!(
            err,
            QueryError::CompositeKey {
                table: "lines".into(),
                columns: "sku, tenant_id".into()
            }
        );
        let err = PrimaryKey::from(json!({"tenant": 7, "sku": "A"}))
            .candidates("lines", &cols)
            .unwrap_err();
        assert!(matches!(err, QueryError::KeyColumns { ref given, .. } if given == "sku, tenant"));
        let ok = PrimaryKey::from(json!({"tenant_id": 7, "sku": "A"}))
            .candidates("lines", &cols)
            .unwrap();
        assert_eq!(ok, vec![json!({"tenant_id": 7, "sku": "A"})]);
    }

    #[test]
    fn null_and_arrays_are_not_keys() {
        assert!(matches!(
            PrimaryKey::from(Value::Null).candidates("t", &id()),
            Err(QueryError::KeyValue(_))
        ));
        assert!(matches!(
            PrimaryKey::from(json!([1])).candidates("t", &id()),
            Err(QueryError::KeyValue(_))
        ));
    }
}
