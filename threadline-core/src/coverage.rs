//! Capture coverage (SPEC §7): which tables are audited, and whether their capture is whole,
//! enabled and current. The catalog is read by `threadline_sqlx::trigger_coverage`; the
//! decisions live here, so they are the same for every caller.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::capture_policy::CaptureComment;
use crate::ident::{TableName, quote_ident, quote_literal};
use crate::redaction::TableCapture;
use crate::sql::{CaptureError, CapturePlan, STAMP_PREFIX, TRIGGER_NAMES};

/// The capture state of one table.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageStatus {
    /// All three capture triggers are present and enabled, and the capture function is what
    /// the current generator makes of the policy stored with it (of the configuration's, for
    /// capture generated before policies were stored).
    Covered,
    /// No capture trigger.
    Uncovered,
    /// Capture is installed but a trigger is disabled (or fires only in replica mode).
    Disabled,
    /// Capture is installed but differs from what would be generated now: a trigger or the
    /// function is missing, or the function's stamp differs (older generator or changed
    /// configuration).
    Stale,
    /// The table does not exist (only in [`check_expected`] results).
    Missing,
}

impl CoverageStatus {
    /// The lowercase name used in CLI output and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            CoverageStatus::Covered => "covered",
            CoverageStatus::Uncovered => "uncovered",
            CoverageStatus::Disabled => "disabled",
            CoverageStatus::Stale => "stale",
            CoverageStatus::Missing => "missing",
        }
    }
}

impl fmt::Display for CoverageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One table's coverage, with what is wrong and how to fix it when it is not covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCoverage {
    /// The table.
    pub table: TableName,
    /// Its state.
    pub status: CoverageStatus,
    /// For anything but covered: what is wrong.
    pub detail: Option<String>,
    /// For anything but covered: how to fix it.
    pub fix: Option<String>,
}

impl TableCoverage {
    /// `detail; fix: fix` for messages (empty when covered).
    pub fn explain(&self) -> String {
        match (&self.detail, &self.fix) {
            (Some(d), Some(f)) => format!("{d}; fix: {f}"),
            (Some(d), None) => d.clone(),
            (None, Some(f)) => format!("fix: {f}"),
            (None, None) => String::new(),
        }
    }
}

impl Serialize for TableCoverage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("TableCoverage", 4)?;
        s.serialize_field("table", &self.table.display_name())?;
        s.serialize_field("status", &self.status)?;
        s.serialize_field("detail", &self.detail)?;
        s.serialize_field("fix", &self.fix)?;
        s.end()
    }
}

/// A capture trigger as found in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTrigger {
    /// Trigger name (one of [`TRIGGER_NAMES`]).
    pub name: String,
    /// `pg_trigger.tgenabled`: `O` and `A` fire normally, `D` is disabled, `R` fires only
    /// when `session_replication_role = replica`.
    pub enabled: char,
    /// Schema of the function it executes.
    pub function_schema: String,
    /// Name of the function it executes.
    pub function_name: String,
    /// That function's comment (the generator's stamp, then the stored capture policy; see
    /// [`CaptureComment`]).
    pub function_comment: Option<String>,
}

/// The policy to regenerate a table's capture from when checking it: the policy stored with
/// its capture (in the capture function's comment), or `local` (the table's
/// `[capture.tables]` section of threadline.toml) for capture generated before policies were
/// stored, or whose stored policy cannot be read.
///
/// ```
/// use threadline_core::{ObservedTrigger, TableCapture, coverage_policy};
/// let trigger = |comment: &str| ObservedTrigger {
///     name: "threadline_capture_insert".into(), enabled: 'O',
///     function_schema: "public".into(), function_name: "threadline_capture_posts_0".into(),
///     function_comment: Some(comment.into()),
/// };
/// let local = TableCapture::default().mask(["email"]);
/// let stored = trigger("threadline:capture:v1:00\n{\"except_columns\":[\"updated_at\"]}");
/// assert_eq!(coverage_policy(&[stored], local.clone()).except_columns, ["updated_at"]);
/// assert_eq!(coverage_policy(&[trigger("threadline:capture:v1:00")], local.clone()), local);
/// ```
pub fn coverage_policy(triggers: &[ObservedTrigger], local: TableCapture) -> TableCapture {
    let stored = triggers
        .iter()
        .filter(|t| TRIGGER_NAMES.contains(&t.name.as_str()))
        .find_map(|t| t.function_comment.as_deref())
        .and_then(|c| CaptureComment::parse(c).policy)
        .and_then(Result::ok);
    stored.unwrap_or(local)
}

/// Decides a table's status from its capture triggers and what the generator would produce
/// now: `expected` is the plan from the current catalog and [`coverage_policy`] (the stored
/// policy, else the configuration's), or why none can be made. It is only consulted when the table has capture triggers, so callers may pass `None`
/// for a table without any (with triggers, `None` is reported as stale).
///
/// ```
/// use threadline_core::{CoverageStatus, classify_coverage};
/// let table = "posts".parse()?;
/// assert_eq!(classify_coverage(&table, &[], None).status, CoverageStatus::Uncovered);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn classify_coverage(
    table: &TableName,
    triggers: &[ObservedTrigger],
    expected: Option<Result<&CapturePlan, &CaptureError>>,
) -> TableCoverage {
    let name = table.display_name();
    let regenerate = format!("run `threadline gen-triggers --tables {name}` and apply the SQL");
    let result = |status, detail: String, fix: String| TableCoverage {
        table: table.clone(),
        status,
        detail: Some(detail),
        fix: Some(fix),
    };
    let ours: Vec<&ObservedTrigger> = triggers
        .iter()
        .filter(|t| TRIGGER_NAMES.contains(&t.name.as_str()))
        .collect();
    if ours.is_empty() {
        return result(
            CoverageStatus::Uncovered,
            "no capture triggers".to_owned(),
            regenerate,
        );
    }
    let disabled: Vec<&str> = ours
        .iter()
        .filter(|t| !matches!(t.enabled, 'O' | 'A'))
        .map(|t| t.name.as_str())
        .collect();
    if !disabled.is_empty() {
        let enable: Vec<String> = disabled
            .iter()
            .map(|t| format!("ALTER TABLE {table} ENABLE TRIGGER {t};"))
            .collect();
        return result(
            CoverageStatus::Disabled,
            format!(
                "trigger(s) {} disabled, so changes are not captured",
                disabled.join(", ")
            ),
            enable.join(" "),
        );
    }
    let stale = |why: String| result(CoverageStatus::Stale, why, regenerate.clone());
    let missing: Vec<&str> = TRIGGER_NAMES
        .iter()
        .copied()
        .filter(|n| !ours.iter().any(|t| t.name == *n))
        .collect();
    if !missing.is_empty() {
        return stale(format!("trigger(s) {} missing", missing.join(", ")));
    }
    let plan = match expected {
        Some(Ok(plan)) => plan,
        Some(Err(e)) => {
            return result(
                CoverageStatus::Stale,
                format!(
                    "capture cannot be regenerated with its capture policy: {}",
                    crate::error::with_causes(e)
                ),
                format!(
                    "fix the table or its capture policy (threadline.toml, gen-triggers flags, or the policy passed to audit_table), then {regenerate}"
                ),
            );
        }
        None => {
            return stale("the capture function was not compared with the generator".to_owned());
        }
    };
    let expected_function = plan.function_name();
    if let Some(t) = ours.iter().find(|t| {
        format!(
            "{}.{}",
            quote_ident(&t.function_schema),
            quote_ident(&t.function_name)
        ) != expected_function
    }) {
        return stale(format!(
            "trigger {} runs {}.{} instead of {expected_function}",
            t.name,
            quote_ident(&t.function_schema),
            quote_ident(&t.function_name),
        ));
    }
    let stamp = plan.stamp();
    let comment = ours[0]
        .function_comment
        .as_deref()
        .map(CaptureComment::parse);
    let found = comment.as_ref().map(|c| c.stamp);
    if found != Some(stamp.as_str()) {
        let why = match found {
            Some(s) if s.starts_with(STAMP_PREFIX) => stale_function_detail(comment.as_ref()),
            Some(s) if s.starts_with("threadline:capture:") => {
                format!(
                    "the capture function was made by another generator version ({})",
                    quote_literal(s)
                )
            }
            _ => "the capture function has no generator stamp (edited or made by hand)".to_owned(),
        };
        return stale(why);
    }
    TableCoverage {
        table: table.clone(),
        status: CoverageStatus::Covered,
        detail: None,
        fix: None,
    }
}

/// Why a function with a current-format stamp is stale: the policy it was compared with is the
/// one stored in its comment when there is one (callers plan from it), else threadline.toml's.
fn stale_function_detail(comment: Option<&CaptureComment<'_>>) -> String {
    match comment.and_then(|c| c.policy.as_ref()) {
        Some(Ok(_)) => "the capture function differs from what the current generator makes of its stored capture policy (the generator or the table's columns changed)".to_owned(),
        _ => "the capture function differs from what the current generator and threadline.toml produce (redaction or generator changed)".to_owned(),
    }
}

/// The expected tables with their status, sorted by name and without duplicates: a table
/// that is absent from `coverage` is [`CoverageStatus::Missing`]. Tables that are not
/// expected are left out.
///
/// ```
/// use threadline_core::{CoverageStatus, TableCoverage, check_expected};
/// let posts = TableCoverage { table: "posts".parse()?, status: CoverageStatus::Covered, detail: None, fix: None };
/// let check = check_expected(&[posts], &["posts".parse()?, "users".parse()?]);
/// assert_eq!(check.iter().map(|t| t.status).collect::<Vec<_>>(),
///            [CoverageStatus::Covered, CoverageStatus::Missing]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_expected(coverage: &[TableCoverage], expected: &[TableName]) -> Vec<TableCoverage> {
    let known: BTreeMap<&TableName, &TableCoverage> =
        coverage.iter().map(|c| (&c.table, c)).collect();
    let mut out: BTreeMap<String, TableCoverage> = BTreeMap::new();
    for table in expected {
        let entry = match known.get(table) {
            Some(c) => (*c).clone(),
            None => TableCoverage {
                table: table.clone(),
                status: CoverageStatus::Missing,
                detail: Some(format!("table {} does not exist", table.display_name())),
                fix: Some("create it, or fix the name in [coverage] expected_tables".to_owned()),
            },
        };
        out.insert(table.display_name(), entry);
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::capture_function_name;
    use crate::{Ident, InstallOptions};

    fn plan(policy: &TableCapture) -> CapturePlan {
        CapturePlan::new(
            &InstallOptions::default(),
            "posts".parse().unwrap(),
            Some(vec![Ident::new("id").unwrap()]),
            None,
            policy,
        )
        .unwrap()
    }

    fn triggers(plan: &CapturePlan, enabled: char) -> Vec<ObservedTrigger> {
        TRIGGER_NAMES
            .iter()
            .map(|n| ObservedTrigger {
                name: (*n).to_owned(),
                enabled,
                function_schema: "public".into(),
                function_name: capture_function_name(plan.table()),
                function_comment: Some(plan.comment()),
            })
            .collect()
    }

    #[test]
    fn every_status() {
        let current = plan(&TableCapture::default());
        let table = current.table().clone();
        let status =
            |t: &[ObservedTrigger], p: &CapturePlan| classify_coverage(&table, t, Some(Ok(p)));
        assert_eq!(
            status(&triggers(&current, 'O'), &current).status,
            CoverageStatus::Covered
        );
        assert_eq!(
            status(&triggers(&current, 'A'), &current).status,
            CoverageStatus::Covered
        );
        assert_eq!(status(&[], &current).status, CoverageStatus::Uncovered);

        let mut one_off = triggers(&current, 'O');
        one_off[1].enabled = 'D';
        let c = status(&one_off, &current);
        assert_eq!(c.status, CoverageStatus::Disabled);
        let detail = c.explain();
        assert!(
            detail.contains(
                "ALTER TABLE \"public\".\"posts\" ENABLE TRIGGER threadline_capture_update;"
            ),
            "{detail}"
        );
        one_off[1].enabled = 'R';
        assert_eq!(status(&one_off, &current).status, CoverageStatus::Disabled);

        let masked = plan(&TableCapture::default().mask(["title"]));
        let c = status(&triggers(&current, 'O'), &masked);
        assert_eq!(c.status, CoverageStatus::Stale);
        assert!(
            c.explain()
                .contains("threadline gen-triggers --tables public.posts")
        );

        assert!(
            c.explain().contains("makes of its stored capture policy"),
            "{}",
            c.explain()
        );
        let mut legacy = triggers(&current, 'O');
        legacy
            .iter_mut()
            .for_each(|t| t.function_comment = Some(current.stamp()));
        assert_eq!(status(&legacy, &current).status, CoverageStatus::Covered);
        assert!(
            status(&legacy, &masked)
                .explain()
                .contains("the current generator and threadline.toml produce")
        );
        assert_eq!(
            coverage_policy(&legacy, TableCapture::default().mask(["title"])),
            TableCapture::default().mask(["title"]),
            "no stored policy: threadline.toml's"
        );
        assert_eq!(
            coverage_policy(
                &triggers(&masked, 'O'),
                TableCapture::default().mask(["other"])
            )
            .mask,
            ["title"],
            "the stored policy wins"
        );

        let mut partial = triggers(&current, 'O');
        partial.retain(|t| t.name != "threadline_capture_delete");
        let c = status(&partial, &current);
        assert_eq!(c.status, CoverageStatus::Stale);
        assert!(c.explain().contains("threadline_capture_delete missing"));

        let mut old = triggers(&current, 'O');
        old.iter_mut()
            .for_each(|t| t.function_comment = Some("threadline:capture:v0:1".into()));
        assert!(
            status(&old, &current)
                .explain()
                .contains("another generator version")
        );
        old.iter_mut().for_each(|t| t.function_comment = None);
        assert!(
            status(&old, &current)
                .explain()
                .contains("no generator stamp")
        );

        let mut elsewhere = triggers(&current, 'O');
        elsewhere[0].function_name = "my_audit".into();
        assert!(
            status(&elsewhere, &current)
                .explain()
                .contains("runs \"public\".\"my_audit\"")
        );

        let err = CaptureError::NoPrimaryKey("public.posts".into());
        let c = classify_coverage(&table, &triggers(&current, 'O'), Some(Err(&err)));
        assert_eq!(c.status, CoverageStatus::Stale);
        assert!(c.explain().contains("has no primary key"));
    }

    #[test]
    fn expected_tables_are_sorted_deduplicated_and_missing_ones_reported() {
        let c = |name: &str, status| TableCoverage {
            table: name.parse().unwrap(),
            status,
            detail: None,
            fix: None,
        };
        let coverage = [
            c("b", CoverageStatus::Stale),
            c("a", CoverageStatus::Covered),
            c("z", CoverageStatus::Uncovered),
        ];
        let expected: Vec<TableName> = ["b", "a", "public.a", "x.y"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let check = check_expected(&coverage, &expected);
        let got: Vec<(String, CoverageStatus)> = check
            .iter()
            .map(|t| (t.table.display_name(), t.status))
            .collect();
        assert_eq!(
            got,
            [
                ("public.a".to_owned(), CoverageStatus::Covered),
                ("public.b".to_owned(), CoverageStatus::Stale),
                ("x.y".to_owned(), CoverageStatus::Missing),
            ]
        );
        assert!(check[2].explain().contains("does not exist"));
        let json = serde_json::to_value(&check[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"table": "public.a", "status": "covered", "detail": null, "fix": null})
        );
    }
}
