//! The retention policy: the validated `[retention]` section of `threadline.toml` (SPEC §7).

use std::time::Duration;

/// Seconds in a day.
const DAY_SECONDS: u64 = 86_400;

/// The longest accepted retention window: 100 years (36,500 days).
pub const MAX_RETENTION_DAYS: u64 = 36_500;

/// The keys `[retention]` accepts.
const KEYS: [&str; 4] = [
    "enabled",
    "keep_days",
    "max_age_seconds",
    "delete_empty_transactions",
];

/// Why a `[retention]` section is invalid. Each message names the key and the fix.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// A key that `[retention]` does not know.
    #[error(
        "[retention] has an unknown key `{0}`; the keys are enabled, keep_days, max_age_seconds and delete_empty_transactions"
    )]
    UnknownKey(String),
    /// A key holds a value of the wrong type.
    #[error("[retention] {key} must be {expected}, got {got}; write e.g. `{key} = {example}`")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What was found.
        got: String,
        /// A valid line.
        example: &'static str,
    },
    /// Neither window key is set.
    #[error(
        "[retention] needs exactly one of keep_days or max_age_seconds; add e.g. `keep_days = 90`"
    )]
    MissingWindow,
    /// Both window keys are set.
    #[error(
        "[retention] sets both keep_days and max_age_seconds; keep only one of them (they both set the same window)"
    )]
    BothWindows,
    /// A window key is zero or negative.
    #[error(
        "[retention] {key} must be positive, got {value}; use a number of {unit} of at least 1"
    )]
    NotPositive {
        /// The key.
        key: &'static str,
        /// The value found.
        value: i64,
        /// Days or seconds.
        unit: &'static str,
    },
    /// A window key is larger than 100 years.
    #[error(
        "[retention] {key} = {value} is longer than 100 years; use at most {max} (or turn retention off with enabled = false)"
    )]
    TooLong {
        /// The key.
        key: &'static str,
        /// The value found.
        value: i64,
        /// The largest accepted value.
        max: u64,
    },
}

/// A validated retention policy.
///
/// ```
/// use threadline_core::RetentionPolicy;
/// let table: toml::Table = toml::from_str("enabled = true\nkeep_days = 90")?;
/// let policy = RetentionPolicy::from_table(&table)?;
/// assert!(policy.enabled);
/// assert_eq!(policy.window.as_secs(), 90 * 86_400);
/// assert!(policy.delete_empty_transactions);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Whether live purges are allowed (`enabled`, default false). Dry runs always are.
    pub enabled: bool,
    /// How long changes are kept: changes captured longer ago than this are purged.
    pub window: Duration,
    /// Whether transactions whose changes were all purged are deleted too (default true).
    pub delete_empty_transactions: bool,
}

impl RetentionPolicy {
    /// A policy keeping `days` days of changes, disabled, deleting emptied transactions.
    ///
    /// Fails like `keep_days` in the file when `days` is 0 or above [`MAX_RETENTION_DAYS`].
    pub fn keep_days(days: u64) -> Result<Self, RetentionError> {
        Self::new(window("keep_days", saturate(days), "days", DAY_SECONDS)?)
    }

    /// A policy keeping `seconds` seconds of changes, disabled, deleting emptied transactions.
    pub fn max_age_seconds(seconds: u64) -> Result<Self, RetentionError> {
        Self::new(window("max_age_seconds", saturate(seconds), "seconds", 1)?)
    }

    fn new(window: Duration) -> Result<Self, RetentionError> {
        Ok(Self {
            enabled: false,
            window,
            delete_empty_transactions: true,
        })
    }

    /// Turns live purges on or off.
    #[must_use]
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Sets whether emptied transactions are deleted.
    #[must_use]
    pub fn delete_empty_transactions(mut self, on: bool) -> Self {
        self.delete_empty_transactions = on;
        self
    }

    /// Validates a `[retention]` table.
    pub fn from_table(table: &toml::Table) -> Result<Self, RetentionError> {
        if let Some(key) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(RetentionError::UnknownKey(key.clone()));
        }
        let enabled = boolean(table, "enabled", false)?;
        let delete_empty = boolean(table, "delete_empty_transactions", true)?;
        let days = integer(table, "keep_days", "90")?;
        let seconds = integer(table, "max_age_seconds", "604800")?;
        let window = match (days, seconds) {
            (Some(_), Some(_)) => return Err(RetentionError::BothWindows),
            (None, None) => return Err(RetentionError::MissingWindow),
            (Some(d), None) => window("keep_days", d, "days", DAY_SECONDS)?,
            (None, Some(s)) => window("max_age_seconds", s, "seconds", 1)?,
        };
        Ok(Self {
            enabled,
            window,
            delete_empty_transactions: delete_empty,
        })
    }

    /// The window in whole seconds.
    pub fn window_seconds(&self) -> u64 {
        self.window.as_secs()
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn window(
    key: &'static str,
    value: i64,
    unit: &'static str,
    scale: u64,
) -> Result<Duration, RetentionError> {
    if value <= 0 {
        return Err(RetentionError::NotPositive { key, value, unit });
    }
    let max = MAX_RETENTION_DAYS * DAY_SECONDS / scale;
    if value as u64 > max {
        return Err(RetentionError::TooLong { key, value, max });
    }
    Ok(Duration::from_secs(value as u64 * scale))
}

fn boolean(table: &toml::Table, key: &'static str, default: bool) -> Result<bool, RetentionError> {
    match table.get(key) {
        None => Ok(default),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(other) => Err(RetentionError::WrongType {
            key,
            expected: "true or false",
            got: describe(other),
            example: if default { "true" } else { "false" },
        }),
    }
}

fn integer(
    table: &toml::Table,
    key: &'static str,
    example: &'static str,
) -> Result<Option<i64>, RetentionError> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(i)) => Ok(Some(*i)),
        Some(other) => Err(RetentionError::WrongType {
            key,
            expected: "a whole number",
            got: describe(other),
            example,
        }),
    }
}

/// A short description of a TOML value for messages: its type and value.
fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(i) => format!("the integer {i}"),
        toml::Value::Float(f) => format!("the number {f}"),
        toml::Value::Boolean(b) => format!("the boolean {b}"),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "an array".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RetentionPolicy, RetentionError> {
        RetentionPolicy::from_table(&toml::from_str(text).expect("valid toml"))
    }

    #[test]
    fn valid_policies() {
        let p = parse("keep_days = 90").unwrap();
        assert!(!p.enabled);
        assert!(p.delete_empty_transactions);
        assert_eq!(p.window_seconds(), 90 * DAY_SECONDS);
        let p = parse("enabled = true\nmax_age_seconds = 3600\ndelete_empty_transactions = false")
            .unwrap();
        assert!(p.enabled);
        assert!(!p.delete_empty_transactions);
        assert_eq!(p.window, Duration::from_secs(3600));
        assert_eq!(
            parse(&format!("keep_days = {MAX_RETENTION_DAYS}"))
                .unwrap()
                .window_seconds(),
            MAX_RETENTION_DAYS * DAY_SECONDS
        );
        assert_eq!(
            RetentionPolicy::keep_days(7).unwrap().enabled(true),
            RetentionPolicy {
                enabled: true,
                window: Duration::from_secs(7 * DAY_SECONDS),
                delete_empty_transactions: true,
            }
        );
    }

    #[test]
    fn every_bad_input_names_the_key_and_the_fix() {
        let cases: [(&str, &str, &str); 14] = [
            (
                "",
                "exactly one of keep_days or max_age_seconds",
                "keep_days = 90",
            ),
            ("enabled = true", "exactly one of", "keep_days = 90"),
            (
                "keep_days = 1\nmax_age_seconds = 60",
                "both keep_days and max_age_seconds",
                "keep only one",
            ),
            (
                "keep_days = 0",
                "keep_days must be positive, got 0",
                "at least 1",
            ),
            (
                "keep_days = -5",
                "keep_days must be positive, got -5",
                "days",
            ),
            (
                "max_age_seconds = 0",
                "max_age_seconds must be positive",
                "seconds",
            ),
            (
                "keep_days = 36501",
                "keep_days = 36501 is longer than 100 years",
                "at most 36500",
            ),
            (
                "max_age_seconds = 9223372036854775807",
                "max_age_seconds",
                "at most 3153600000",
            ),
            (
                "keep_days = \"90\"",
                "keep_days must be a whole number, got the string \"90\"",
                "keep_days = 90",
            ),
            (
                "keep_days = 1.5",
                "keep_days must be a whole number, got the number 1.5",
                "keep_days = 90",
            ),
            (
                "max_age_seconds = [1]",
                "max_age_seconds must be a whole number, got an array",
                "max_age_seconds = 604800",
            ),
            (
                "enabled = \"yes\"\nkeep_days = 1",
                "enabled must be true or false, got the string \"yes\"",
                "enabled = false",
            ),
            (
                "keep_days = 1\ndelete_empty_transactions = 1",
                "delete_empty_transactions must be true or false, got the integer 1",
                "= true",
            ),
            (
                "keep_days = 1\nkeepdays = 2",
                "unknown key `keepdays`",
                "the keys are enabled, keep_days",
            ),
        ];
        for (text, what, fix) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.starts_with("[retention] "), "{text:?}: {err}");
            assert!(err.contains(what), "{text:?}: {err}");
            assert!(err.contains(fix), "{text:?}: {err}");
        }
        assert!(matches!(
            RetentionPolicy::keep_days(0),
            Err(RetentionError::NotPositive { .. })
        ));
        assert!(matches!(
            RetentionPolicy::max_age_seconds(u64::MAX),
            Err(RetentionError::TooLong { .. })
        ));
    }
}
