//! The capture policy stored with a table's capture, so that every tool reads the policy the
//! capture was generated with from the database itself, whoever generated it (`gen-triggers`
//! from `threadline.toml` and flags, or `audit_table` with a policy built in code).
//!
//! It lives in the capture function's comment, after the generator's stamp:
//!
//! ```text
//! threadline:capture:v1:<16 hex digits>
//! {"exclude":[],"mask":[],"mask_placeholder":"[REDACTED]","store_changed_from":false,"except_columns":["updated_at"],"key_columns":null}
//! ```
//!
//! The comment is written by the same `COMMENT ON FUNCTION` as the stamp, so the policy can
//! never describe another version of the function, is dropped with it, and can only be
//! written by the function's owner (the owner role in the hardened install). In SQL:
//! `split_part(obj_description(<function oid>, 'pg_proc'), E'\n', 2)::jsonb`.

use std::collections::BTreeSet;
use std::fmt;

use crate::ident::Ident;
use crate::redaction::{ResolvedPolicy, TableCapture, TruncateCapture};

/// Why the policy stored in a capture function's comment cannot be read.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the capture policy stored in the capture function's comment cannot be read ({reason}); it was edited by hand or written by a newer Threadline: regenerate the capture with `threadline gen-triggers`"
)]
pub struct StoredPolicyError {
    /// What is wrong with it.
    pub reason: String,
}

/// A capture function's comment, split into the generator's stamp and the stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureComment<'a> {
    /// The first line: the generator's stamp (`threadline:capture:v1:...`).
    pub stamp: &'a str,
    /// The policy the capture was generated with: `None` for capture generated before
    /// policies were stored (its comment is the stamp alone).
    pub policy: Option<Result<TableCapture, StoredPolicyError>>,
}

impl<'a> CaptureComment<'a> {
    /// Splits a capture function's comment.
    ///
    /// ```
    /// use threadline_core::CaptureComment;
    /// let old = CaptureComment::parse("threadline:capture:v1:00ff");
    /// assert_eq!((old.stamp, old.policy), ("threadline:capture:v1:00ff", None));
    /// let new = CaptureComment::parse("threadline:capture:v1:00ff\n{\"mask\":[\"email\"]}");
    /// assert_eq!(new.policy.unwrap().unwrap().mask, ["email"]);
    /// ```
    pub fn parse(comment: &'a str) -> Self {
        let (stamp, rest) = comment.split_once('\n').unwrap_or((comment, ""));
        let rest = rest.trim();
        let policy = (!rest.is_empty()).then(|| {
            serde_json::from_str::<TableCapture>(rest)
                .map_err(|e| StoredPolicyError {
                    reason: e.to_string(),
                })
                .and_then(|p| {
                    p.validate().map(|()| p).map_err(|e| StoredPolicyError {
                        reason: crate::error::with_causes(&e),
                    })
                })
        });
        Self { stamp, policy }
    }
}

/// The comment written on a capture function: `stamp`, a newline, and the policy as one line
/// of JSON (every setting spelled out, lists sorted).
pub fn capture_comment(stamp: &str, policy: &ResolvedPolicy) -> String {
    let json =
        serde_json::to_string(&stored_form(policy)).expect("a TableCapture always serializes");
    format!("{stamp}\n{json}")
}

/// The policy as stored: the validated policy with every setting explicit.
pub fn stored_form(policy: &ResolvedPolicy) -> TableCapture {
    let names = |set: &BTreeSet<Ident>| set.iter().map(|c| c.as_str().to_owned()).collect();
    TableCapture {
        exclude: names(&policy.exclude),
        mask: names(&policy.mask),
        mask_placeholder: Some(policy.placeholder.clone()),
        store_changed_from: policy.store_changed_from,
        except_columns: names(&policy.except),
        key_columns: policy
            .key_columns
            .as_ref()
            .map(|k| k.iter().map(|c| c.as_str().to_owned()).collect()),
        truncate: Some(policy.truncate),
        truncate_row_limit: Some(policy.truncate_row_limit),
    }
}

/// One way a local policy (`threadline.toml`) differs from the stored one.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDifference {
    /// A column list (`exclude`, `mask`, `except_columns` or `key_columns`) names different
    /// columns.
    Columns {
        /// The list.
        list: &'static str,
        /// Columns in the stored policy only.
        stored_only: Vec<String>,
        /// Columns in the local policy only.
        local_only: Vec<String>,
    },
    /// `store_changed_from` differs.
    StoreChangedFrom {
        /// The stored value.
        stored: bool,
    },
    /// `mask_placeholder` differs.
    MaskPlaceholder {
        /// The stored placeholder.
        stored: String,
        /// The local placeholder.
        local: String,
    },
    /// `truncate` or `truncate_row_limit` differs.
    Truncate {
        /// The stored setting, e.g. `images (limit 100000)`.
        stored: String,
        /// The local setting.
        local: String,
    },
}

impl fmt::Display for PolicyDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyDifference::Columns {
                list,
                stored_only,
                local_only,
            } => {
                write!(f, "{list}:")?;
                if !stored_only.is_empty() {
                    write!(f, " {} only in the stored policy", stored_only.join(", "))?;
                }
                if !stored_only.is_empty() && !local_only.is_empty() {
                    f.write_str(";")?;
                }
                if !local_only.is_empty() {
                    write!(f, " {} only in threadline.toml", local_only.join(", "))?;
                }
                Ok(())
            }
            PolicyDifference::StoreChangedFrom { stored } => write!(
                f,
                "store_changed_from: {stored} in the stored policy, {} in threadline.toml",
                !stored
            ),
            PolicyDifference::MaskPlaceholder { stored, local } => write!(
                f,
                "mask_placeholder: {stored:?} in the stored policy, {local:?} in threadline.toml"
            ),
            PolicyDifference::Truncate { stored, local } => write!(
                f,
                "truncate: {stored} in the stored policy, {local} in threadline.toml"
            ),
        }
    }
}

/// How `local` differs from `stored`, list by list (empty when they make the same capture).
///
/// ```
/// use threadline_core::{TableCapture, policy_differences};
/// let stored = TableCapture::default().except_columns(["updated_at"]).resolve()?;
/// let local = TableCapture::default().mask(["email"]).resolve()?;
/// let found: Vec<String> = policy_differences(&stored, &local).iter().map(|d| d.to_string()).collect();
/// assert_eq!(found, ["mask: email only in threadline.toml",
///                    "except_columns: updated_at only in the stored policy"]);
/// # Ok::<(), threadline_core::PolicyError>(())
/// ```
pub fn policy_differences(
    stored: &ResolvedPolicy,
    local: &ResolvedPolicy,
) -> Vec<PolicyDifference> {
    let mut out = Vec::new();
    let key_set =
        |k: &Option<Vec<Ident>>| -> BTreeSet<Ident> { k.iter().flatten().cloned().collect() };
    let lists = [
        ("exclude", stored.exclude.clone(), local.exclude.clone()),
        ("mask", stored.mask.clone(), local.mask.clone()),
        (
            "except_columns",
            stored.except.clone(),
            local.except.clone(),
        ),
        (
            "key_columns",
            key_set(&stored.key_columns),
            key_set(&local.key_columns),
        ),
    ];
    for (list, s, l) in lists {
        let only = |a: &BTreeSet<Ident>, b: &BTreeSet<Ident>| -> Vec<String> {
            a.difference(b).map(|c| c.as_str().to_owned()).collect()
        };
        let (stored_only, local_only) = (only(&s, &l), only(&l, &s));
        if !stored_only.is_empty() || !local_only.is_empty() {
            out.push(PolicyDifference::Columns {
                list,
                stored_only,
                local_only,
            });
        }
    }
    if stored.store_changed_from != local.store_changed_from {
        out.push(PolicyDifference::StoreChangedFrom {
            stored: stored.store_changed_from,
        });
    }
    let truncate = |p: &ResolvedPolicy| match p.truncate {
        TruncateCapture::Count => "count".to_owned(),
        mode => format!("{} (limit {})", mode.as_str(), p.truncate_row_limit),
    };
    if truncate(stored) != truncate(local) {
        out.push(PolicyDifference::Truncate {
            stored: truncate(stored),
            local: truncate(local),
        });
    }
    if stored.placeholder != local.placeholder {
        out.push(PolicyDifference::MaskPlaceholder {
            stored: stored.placeholder.clone(),
            local: local.placeholder.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_round_trip_and_old_or_broken_ones_are_told_apart() {
        let policy = TableCapture::default()
            .mask(["email", "b"])
            .except_columns(["updated_at"])
            .mask_placeholder("***")
            .store_changed_from(true)
            .key_columns(["id"])
            .resolve()
            .unwrap();
        let comment = capture_comment("threadline:capture:v1:0123", &policy);
        assert_eq!(
            comment,
            "threadline:capture:v1:0123\n{\"exclude\":[],\"mask\":[\"b\",\"email\"],\"mask_placeholder\":\"***\",\"store_changed_from\":true,\"except_columns\":[\"updated_at\"],\"key_columns\":[\"id\"],\"truncate\":\"count\",\"truncate_row_limit\":100000}"
        );
        let parsed = CaptureComment::parse(&comment);
        assert_eq!(parsed.stamp, "threadline:capture:v1:0123");
        let stored = parsed.policy.unwrap().unwrap();
        assert_eq!(stored.resolve().unwrap(), policy);

        assert_eq!(
            CaptureComment::parse("threadline:capture:v1:0123").policy,
            None
        );
        let broken = CaptureComment::parse("threadline:capture:v1:0123\n{\"mask\": 1}");
        assert!(broken.policy.unwrap().is_err());
        let invalid = CaptureComment::parse(
            "threadline:capture:v1:0123\n{\"mask\":[\"a\"],\"exclude\":[\"a\"]}",
        );
        let e = invalid.policy.unwrap().unwrap_err();
        assert!(e.to_string().contains("both `exclude` and `mask`"), "{e}");
    }

    #[test]
    fn differences_name_the_columns_and_settings() {
        let stored = TableCapture::default()
            .exclude(["secret"])
            .except_columns(["updated_at"])
            .resolve()
            .unwrap();
        let local = TableCapture::default()
            .exclude(["secret", "token"])
            .store_changed_from(true)
            .mask_placeholder("***")
            .resolve()
            .unwrap();
        let found: Vec<String> = policy_differences(&stored, &local)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "exclude: token only in threadline.toml",
                "except_columns: updated_at only in the stored policy",
                "store_changed_from: false in the stored policy, true in threadline.toml",
                "mask_placeholder: \"[REDACTED]\" in the stored policy, \"***\" in threadline.toml",
            ]
        );
        assert!(policy_differences(&stored, &stored).is_empty());
    }
}
