//! Health findings for `threadline doctor`, and the install manifest they are checked against.

use std::fmt;

use serde::Serialize;

use crate::sql::{InstallOptions, install_sql};

/// How bad a finding is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The check passed.
    Ok,
    /// Works, but weaker than it should be.
    Warning,
    /// Changes may go uncaptured or the trail is damaged.
    Error,
}

impl Severity {
    /// `ok`, `warning` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One result of a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check: `install`, `indexes`, `coverage`, `capture_policy`, `replication_role`,
    /// `privileges`, `orphans`, `unattributed` or `partitions`.
    pub check: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// What was found.
    pub message: String,
    /// How to fix it (for warnings and errors).
    pub fix: Option<String>,
}

impl Finding {
    /// A passed check.
    pub fn ok(check: &'static str, message: impl Into<String>) -> Self {
        Self {
            check,
            severity: Severity::Ok,
            message: message.into(),
            fix: None,
        }
    }

    /// A failed check with its fix.
    pub fn problem(
        check: &'static str,
        severity: Severity,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check,
            severity,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What `install` creates, read from the generated install SQL, so checks never drift from it.
///
/// ```
/// use threadline_core::{InstallManifest, InstallOptions};
/// let m = InstallManifest::of(&InstallOptions::default());
/// let (_, columns) = m.tables.iter().find(|(t, _)| t == "audit_changes").unwrap();
/// assert!(columns.iter().any(|c| c == "captured_at"));
/// assert!(m.indexes.iter().any(|i| i == "audit_changes_row_idx"));
/// assert!(m.functions.iter().any(|(f, body)| f == "threadline_transaction_id" && body.contains("txid_current()")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstallManifest {
    /// Each table with its column names.
    pub tables: Vec<(String, Vec<String>)>,
    /// Index names.
    pub indexes: Vec<String>,
    /// Each function's name and body (the text between its dollar quotes, as PostgreSQL
    /// stores it in `pg_proc.prosrc`).
    pub functions: Vec<(String, String)>,
}

impl InstallManifest {
    /// The manifest of the install SQL for `options`.
    pub fn of(options: &InstallOptions) -> Self {
        Self::parse(
            &install_sql(options),
            &format!("{}.", options.schema.quoted()),
        )
    }

    fn parse(sql: &str, schema_prefix: &str) -> Self {
        let mut manifest = Self {
            tables: Vec::new(),
            indexes: Vec::new(),
            functions: Vec::new(),
        };
        let mut lines = sql.lines().peekable();
        let mut offset = 0;
        while let Some(line) = lines.next() {
            let start = offset;
            offset += line.len() + 1;
            if let Some(rest) = line
                .strip_prefix("CREATE TABLE IF NOT EXISTS ")
                .filter(|rest| rest.ends_with('('))
            {
                let mut columns = Vec::new();
                while let Some(col) = lines.next_if(|l| !l.starts_with(')')) {
                    offset += col.len() + 1;
                    let word = col.split_whitespace().next().unwrap_or("");
                    let constraint = [
                        "PRIMARY",
                        "CONSTRAINT",
                        "UNIQUE",
                        "CHECK",
                        "FOREIGN",
                        "EXCLUDE",
                    ];
                    if col.starts_with("    ") && !word.is_empty() && !constraint.contains(&word) {
                        columns.push(unquote(word));
                    }
                }
                manifest
                    .tables
                    .push((object_name(rest, schema_prefix), columns));
            } else if let Some(rest) = line
                .strip_prefix("CREATE INDEX IF NOT EXISTS ")
                .or_else(|| line.strip_prefix("CREATE UNIQUE INDEX IF NOT EXISTS "))
            {
                manifest
                    .indexes
                    .push(unquote(rest.split_whitespace().next().unwrap_or("")));
            } else if let Some(rest) = line.strip_prefix("CREATE OR REPLACE FUNCTION ")
                && let Some(body) = function_body(&sql[start..])
            {
                manifest
                    .functions
                    .push((object_name(rest, schema_prefix), body.to_owned()));
            }
        }
        manifest
    }
}

/// `"schema".name (` or `"schema".name(args` → `name`.
fn object_name(rest: &str, schema_prefix: &str) -> String {
    let name = rest.strip_prefix(schema_prefix).unwrap_or(rest);
    unquote(name.split(['(', ' ']).next().unwrap_or(""))
}

fn unquote(word: &str) -> String {
    word.trim_matches('"').replace("\"\"", "\"")
}

/// The text between the first `AS $tag$` and the closing `$tag$`.
fn function_body(sql: &str) -> Option<&str> {
    let open = sql.find(" AS $")? + 4;
    let tag_len = sql[open + 1..].find('$')? + 2;
    let tag = &sql[open..open + tag_len];
    let body_start = open + tag_len;
    let body_len = sql[body_start..].find(tag)?;
    Some(&sql[body_start..body_start + body_len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ident;

    #[test]
    fn manifest_lists_tables_indexes_and_function_bodies() {
        let m = InstallManifest::of(&InstallOptions::with_schema(
            Ident::new("Audit Log").unwrap(),
        ));
        let tables: Vec<&str> = m.tables.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            tables,
            [
                "audit_transactions",
                "audit_changes",
                "audit_actions",
                "audit_seals",
                "audit_seal_items",
                "audit_erasures"
            ]
        );
        let changes = &m.tables[1].1;
        assert_eq!(changes.first().map(String::as_str), Some("id"));
        assert!(changes.iter().any(|c| c == "op") && changes.iter().any(|c| c == "captured_at"));
        assert!(
            !changes.iter().any(|c| c.chars().any(char::is_uppercase)),
            "{changes:?}"
        );
        assert!(m.indexes.len() >= 6, "{:?}", m.indexes);
        assert!(
            m.indexes.iter().all(|i| i.starts_with("audit_")),
            "{:?}",
            m.indexes
        );
        let names: Vec<&str> = m.functions.iter().map(|(f, _)| f.as_str()).collect();
        assert!(
            names.contains(&"threadline_transaction_id")
                && names.contains(&"threadline_check_shape"),
            "{names:?}"
        );
        for (name, body) in &m.functions {
            assert!(body.starts_with('\n') && body.len() > 50, "{name}: {body}");
        }
    }

    #[test]
    fn findings_serialize_for_json_output() {
        let f = Finding::problem(
            "orphans",
            Severity::Error,
            "2 orphan changes",
            "investigate",
        );
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"check": "orphans", "severity": "error", "message": "2 orphan changes", "fix": "investigate"})
        );
        assert_eq!(Finding::ok("install", "fine").fix, None);
        assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Ok);
    }
}
