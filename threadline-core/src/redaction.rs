//! Per-table capture policy: redaction (`exclude`, `mask`), change detection (`except_columns`)
//! and `store_changed_from`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ident::{Ident, IdentError};

/// The placeholder written in place of masked values unless a table sets its own.
pub const DEFAULT_MASK_PLACEHOLDER: &str = "[REDACTED]";

/// Longest accepted mask placeholder, in characters.
pub const MAX_PLACEHOLDER_CHARS: usize = 200;

/// The default `truncate_row_limit`: the most rows a `truncate = "images"` table may hold when
/// it is truncated (see [`TableCapture::truncate_row_limit`]).
pub const DEFAULT_TRUNCATE_ROW_LIMIT: u64 = 100_000;

/// What a `TRUNCATE` of an audited table records (`truncate` in `threadline.toml`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TruncateCapture {
    /// One `op = 'truncate'` change with the number of rows removed (`{"rows": N}` in
    /// `data_before`).
    #[default]
    Count,
    /// The `truncate` change, and every removed row's pre-image as a `delete` change in the
    /// same transaction. A table holding more than the row limit refuses the `TRUNCATE`.
    Images,
}

impl TruncateCapture {
    /// The name used in `threadline.toml`: `count` or `images`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TruncateCapture::Count => "count",
            TruncateCapture::Images => "images",
        }
    }
}

/// Why a capture policy is invalid.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A column is both excluded and masked.
    #[error(
        "column(s) {0} are listed in both `exclude` and `mask`; keep each column in only one list (exclude drops it, mask hides its value)"
    )]
    ExcludeMaskOverlap(String),
    /// The placeholder is empty.
    #[error(
        "`mask_placeholder` is empty; use 1 to {MAX_PLACEHOLDER_CHARS} characters, e.g. \"[REDACTED]\""
    )]
    EmptyPlaceholder,
    /// The placeholder is too long.
    #[error("`mask_placeholder` has {0} characters; the limit is {MAX_PLACEHOLDER_CHARS}")]
    PlaceholderTooLong(usize),
    /// The placeholder holds a control character.
    #[error("`mask_placeholder` contains a control character; use printable text only")]
    PlaceholderControlChar,
    /// `truncate_row_limit` is zero.
    #[error(
        "`truncate_row_limit` is 0; use a positive number of rows (default {DEFAULT_TRUNCATE_ROW_LIMIT}), or `truncate = \"count\"` to record only the number of rows"
    )]
    ZeroTruncateLimit,
    /// A column name is not a valid identifier.
    #[error("invalid column name in `{list}`")]
    InvalidColumn {
        /// The list that holds it.
        list: &'static str,
        /// What is wrong with it.
        source: IdentError,
    },
    /// A primary key column cannot be redacted, since `table_pk` must identify the row.
    #[error(
        "column {0:?} is part of the key; key columns identify the row in `table_pk` and cannot be excluded or masked"
    )]
    KeyColumnRedacted(String),
    /// The policy names columns that the table does not have.
    #[error(
        "table {table} has no column(s) {columns}; fix the names in `{list}` (existing columns: {existing})"
    )]
    UnknownColumns {
        /// The table.
        table: String,
        /// The list that names them.
        list: &'static str,
        /// The missing names.
        columns: String,
        /// What the table has.
        existing: String,
    },
}

/// How one table is captured. This is the `[capture.tables.<name>]` section of `threadline.toml`.
///
/// ```
/// use threadline_core::TableCapture;
/// let policy = TableCapture::default().exclude(["password_hash"]).mask(["email"]);
/// policy.validate()?;
/// assert_eq!(policy.placeholder(), "[REDACTED]");
/// # Ok::<(), threadline_core::PolicyError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableCapture {
    /// Columns dropped from every image, from `changed_fields` and from change detection.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Columns whose value is replaced by the placeholder in every image.
    #[serde(default)]
    pub mask: Vec<String>,
    /// The placeholder for masked values (default `[REDACTED]`).
    #[serde(default)]
    pub mask_placeholder: Option<String>,
    /// Store prior values of changed columns in `changed_from` on UPDATE.
    #[serde(default)]
    pub store_changed_from: bool,
    /// Columns ignored for change detection, `changed_fields` and `changed_from` (kept in images).
    #[serde(default)]
    pub except_columns: Vec<String>,
    /// Key columns for a table without a primary key (or to override it).
    #[serde(default)]
    pub key_columns: Option<Vec<String>>,
    /// What a `TRUNCATE` records: `count` (the default) or `images`.
    #[serde(default)]
    pub truncate: Option<TruncateCapture>,
    /// With `truncate = "images"`: the most rows the table may hold when truncated; a larger
    /// `TRUNCATE` is refused (default [`DEFAULT_TRUNCATE_ROW_LIMIT`]).
    #[serde(default)]
    pub truncate_row_limit: Option<u64>,
}

impl TableCapture {
    /// Adds excluded columns.
    #[must_use]
    pub fn exclude<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cols: I) -> Self {
        self.exclude.extend(cols.into_iter().map(Into::into));
        self
    }

    /// Adds masked columns.
    #[must_use]
    pub fn mask<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cols: I) -> Self {
        self.mask.extend(cols.into_iter().map(Into::into));
        self
    }

    /// Adds columns ignored by change detection.
    #[must_use]
    pub fn except_columns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cols: I) -> Self {
        self.except_columns.extend(cols.into_iter().map(Into::into));
        self
    }

    /// Sets the mask placeholder.
    #[must_use]
    pub fn mask_placeholder(mut self, placeholder: impl Into<String>) -> Self {
        self.mask_placeholder = Some(placeholder.into());
        self
    }

    /// Turns `changed_from` on or off.
    #[must_use]
    pub fn store_changed_from(mut self, on: bool) -> Self {
        self.store_changed_from = on;
        self
    }

    /// Sets explicit key columns.
    #[must_use]
    pub fn key_columns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cols: I) -> Self {
        self.key_columns = Some(cols.into_iter().map(Into::into).collect());
        self
    }

    /// Sets what a `TRUNCATE` records.
    #[must_use]
    pub fn truncate(mut self, mode: TruncateCapture) -> Self {
        self.truncate = Some(mode);
        self
    }

    /// Sets the row limit for `truncate = "images"`.
    #[must_use]
    pub fn truncate_row_limit(mut self, rows: u64) -> Self {
        self.truncate_row_limit = Some(rows);
        self
    }

    /// The effective placeholder.
    pub fn placeholder(&self) -> &str {
        self.mask_placeholder
            .as_deref()
            .unwrap_or(DEFAULT_MASK_PLACEHOLDER)
    }

    /// Merges another policy into this one (lists are unioned, flags are or-ed,
    /// a placeholder, key list or truncate setting in `other` wins).
    #[must_use]
    pub fn merge(mut self, other: &TableCapture) -> Self {
        self.exclude.extend(other.exclude.iter().cloned());
        self.mask.extend(other.mask.iter().cloned());
        self.except_columns
            .extend(other.except_columns.iter().cloned());
        self.store_changed_from |= other.store_changed_from;
        if other.mask_placeholder.is_some() {
            self.mask_placeholder.clone_from(&other.mask_placeholder);
        }
        if other.key_columns.is_some() {
            self.key_columns.clone_from(&other.key_columns);
        }
        if other.truncate.is_some() {
            self.truncate = other.truncate;
        }
        if other.truncate_row_limit.is_some() {
            self.truncate_row_limit = other.truncate_row_limit;
        }
        self
    }

    /// Checks the policy on its own (without knowing the table).
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.resolve().map(|_| ())
    }

    /// Validates and normalises the policy into sorted, de-duplicated column sets.
    pub fn resolve(&self) -> Result<ResolvedPolicy, PolicyError> {
        let exclude = column_set("exclude", &self.exclude)?;
        let mask = column_set("mask", &self.mask)?;
        let except = column_set("except_columns", &self.except_columns)?;
        let key = match &self.key_columns {
            Some(cols) => Some(column_list("key_columns", cols)?),
            None => None,
        };
        let overlap: Vec<&str> = exclude.intersection(&mask).map(|c| c.as_str()).collect();
        if !overlap.is_empty() {
            return Err(PolicyError::ExcludeMaskOverlap(overlap.join(", ")));
        }
        let placeholder = self.placeholder();
        let chars = placeholder.chars().count();
        if chars == 0 {
            return Err(PolicyError::EmptyPlaceholder);
        }
        if chars > MAX_PLACEHOLDER_CHARS {
            return Err(PolicyError::PlaceholderTooLong(chars));
        }
        if placeholder.chars().any(char::is_control) {
            return Err(PolicyError::PlaceholderControlChar);
        }
        let truncate_row_limit = self
            .truncate_row_limit
            .unwrap_or(DEFAULT_TRUNCATE_ROW_LIMIT);
        if truncate_row_limit == 0 {
            return Err(PolicyError::ZeroTruncateLimit);
        }
        Ok(ResolvedPolicy {
            exclude,
            mask,
            except,
            key_columns: key,
            placeholder: placeholder.to_owned(),
            store_changed_from: self.store_changed_from,
            truncate: self.truncate.unwrap_or_default(),
            truncate_row_limit,
        })
    }
}

/// A validated policy with normalised column sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPolicy {
    /// Excluded columns.
    pub exclude: BTreeSet<Ident>,
    /// Masked columns.
    pub mask: BTreeSet<Ident>,
    /// Columns ignored by change detection.
    pub except: BTreeSet<Ident>,
    /// Explicit key columns, if given.
    pub key_columns: Option<Vec<Ident>>,
    /// The placeholder for masked values.
    pub placeholder: String,
    /// Whether `changed_from` is stored.
    pub store_changed_from: bool,
    /// What a `TRUNCATE` records.
    pub truncate: TruncateCapture,
    /// With [`TruncateCapture::Images`]: the most rows a truncated table may hold.
    pub truncate_row_limit: u64,
}

fn column(list: &'static str, name: &str) -> Result<Ident, PolicyError> {
    Ident::new(name.trim()).map_err(|source| PolicyError::InvalidColumn { list, source })
}

fn column_set(list: &'static str, names: &[String]) -> Result<BTreeSet<Ident>, PolicyError> {
    names.iter().map(|n| column(list, n)).collect()
}

fn column_list(list: &'static str, names: &[String]) -> Result<Vec<Ident>, PolicyError> {
    let mut out: Vec<Ident> = Vec::new();
    for n in names {
        let c = column(list, n)?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(PolicyError::InvalidColumn {
            list,
            source: IdentError::Empty,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_and_placeholder_rules() {
        let p = TableCapture::default().exclude(["a", "b"]).mask(["b"]);
        assert_eq!(
            p.validate(),
            Err(PolicyError::ExcludeMaskOverlap("b".into()))
        );
        let p = TableCapture::default().mask_placeholder("");
        assert_eq!(p.validate(), Err(PolicyError::EmptyPlaceholder));
        let p = TableCapture::default().mask_placeholder("x".repeat(201));
        assert_eq!(p.validate(), Err(PolicyError::PlaceholderTooLong(201)));
        assert!(
            TableCapture::default()
                .mask_placeholder("é".repeat(200))
                .validate()
                .is_ok()
        );
        let p = TableCapture::default().mask_placeholder("a\nb");
        assert_eq!(p.validate(), Err(PolicyError::PlaceholderControlChar));
        let p = TableCapture::default().exclude([""]);
        assert!(matches!(
            p.validate(),
            Err(PolicyError::InvalidColumn {
                list: "exclude",
                ..
            })
        ));
    }

    #[test]
    fn resolve_sorts_and_dedupes() {
        let r = TableCapture::default()
            .mask(["z", "a", " a "])
            .except_columns(["updated_at"])
            .resolve()
            .unwrap();
        let names: Vec<&str> = r.mask.iter().map(Ident::as_str).collect();
        assert_eq!(names, ["a", "z"]);
        assert_eq!(r.placeholder, "[REDACTED]");
    }

    #[test]
    fn merge_unions_lists() {
        let a = TableCapture::default().exclude(["x"]);
        let b = TableCapture::default()
            .exclude(["y"])
            .store_changed_from(true)
            .mask_placeholder("***");
        let m = a.merge(&b);
        assert_eq!(m.exclude, ["x", "y"]);
        assert!(m.store_changed_from);
        assert_eq!(m.placeholder(), "***");
    }
}
