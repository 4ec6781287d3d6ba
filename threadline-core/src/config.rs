//! The `threadline.toml` configuration file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ident::{DEFAULT_SCHEMA, Ident, IdentError, TableName};
use crate::partition::{DEFAULT_PREMAKE, MAX_PREMAKE, StorageSettings};
use crate::redaction::TableCapture;
use crate::retention::{RetentionError, RetentionPolicy};
use crate::sql::InstallOptions;

/// Why a configuration could not be loaded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The TOML is malformed or has unknown keys.
    #[error("invalid threadline.toml: {0}")]
    Toml(String),
    /// The `schema` key is not a valid name.
    #[error("invalid `schema` in threadline.toml: {0}")]
    Schema(IdentError),
    /// `owner_role` or `reader_roles` holds an invalid role name.
    #[error("invalid role name in `{key}` in threadline.toml")]
    Role {
        /// The key.
        key: &'static str,
        /// Why it is invalid.
        source: IdentError,
    },
    /// A `[capture.tables.<name>]` key is not a valid table name.
    #[error("invalid table name {name:?} under [capture.tables]")]
    TableName {
        /// The key as written.
        name: String,
        /// Why it is invalid.
        source: IdentError,
    },
    /// Two keys under `[capture.tables]` name the same table.
    #[error("table {0} appears twice under [capture.tables]; merge the two sections")]
    DuplicateTable(String),
    /// A table's policy is invalid.
    #[error("invalid policy for table {table}")]
    Policy {
        /// The table.
        table: String,
        /// What is wrong.
        source: crate::PolicyError,
    },
    /// An entry of `[coverage] expected_tables` is not a valid table name.
    #[error("invalid table name {name:?} in [coverage] expected_tables")]
    ExpectedTable {
        /// The entry as written.
        name: String,
        /// Why it is invalid.
        source: IdentError,
    },
    /// The `[retention]` section is invalid.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// The `[storage]` section is invalid.
    #[error("invalid [storage] in threadline.toml: {0}")]
    Storage(String),
}

/// The whole `threadline.toml`.
///
/// ```
/// use threadline_core::Config;
/// let cfg = Config::from_toml(r#"
/// schema = "public"
/// [capture.tables.users]
/// exclude = ["password_hash"]
/// mask = ["email"]
/// "#)?;
/// let users = cfg.table_policy(&"users".parse().unwrap());
/// assert_eq!(users.mask, ["email"]);
/// # Ok::<(), threadline_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The schema that holds the audit tables (default `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// Capture settings.
    #[serde(default)]
    pub capture: CaptureConfig,
    /// Coverage expectations.
    #[serde(default)]
    pub coverage: CoverageConfig,
    /// Hardened mode: the role that owns the audit trail (`InstallOptions::owner_role`).
    #[serde(default)]
    pub owner_role: Option<String>,
    /// Hardened mode: roles that may read the audit tables.
    #[serde(default)]
    pub reader_roles: Vec<String>,
    /// The `[retention]` section as written; [`Config::retention_policy`] validates it.
    #[serde(default)]
    pub retention: Option<toml::Table>,
    /// The `[storage]` section as written; [`Config::storage_settings`] validates it.
    #[serde(default)]
    pub storage: Option<StorageConfig>,
}

/// `[storage]`: the partitioned layout (see `guides/scaling.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Whether `install` creates the partitioned layout (default false).
    #[serde(default)]
    pub partitioned: bool,
    /// `day`, `week` or `month` (default month).
    #[serde(default)]
    pub interval: Option<String>,
    /// Future partitions to keep ready (default 3).
    #[serde(default)]
    pub premake: Option<i64>,
    /// `drop` (default) or `detach`: what retention does with a partition wholly before the
    /// cutoff.
    #[serde(default)]
    pub retired_partitions: Option<String>,
}

/// `[capture]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Per-table policies keyed by `table` or `schema.table`.
    #[serde(default)]
    pub tables: BTreeMap<String, TableCapture>,
}

/// `[coverage]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageConfig {
    /// Tables that must be audited.
    #[serde(default)]
    pub expected_tables: Vec<String>,
}

impl Config {
    /// Parses and validates a configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        cfg.install_options()?;
        cfg.tables()?;
        cfg.retention_policy()?;
        cfg.expected_tables()?;
        cfg.storage_settings()?;
        Ok(cfg)
    }

    /// The install options this file describes: schema and hardened-mode roles.
    pub fn install_options(&self) -> Result<InstallOptions, ConfigError> {
        let mut options = InstallOptions::with_schema(self.audit_schema()?);
        let role = |key: &'static str, name: &str| {
            Ident::parse(name).map_err(|source| ConfigError::Role { key, source })
        };
        if let Some(owner) = &self.owner_role {
            options = options.with_owner_role(role("owner_role", owner)?);
        }
        for reader in &self.reader_roles {
            options = options.with_reader_role(role("reader_roles", reader)?);
        }
        if let Some(interval) = self.storage_settings()?.partitioned() {
            options = options.with_partitioning(interval);
        }
        Ok(options)
    }

    /// The validated `[storage]` section (defaults when the file has none).
    pub fn storage_settings(&self) -> Result<StorageSettings, ConfigError> {
        let mut settings = StorageSettings {
            premake: DEFAULT_PREMAKE,
            ..StorageSettings::default()
        };
        let Some(storage) = &self.storage else {
            return Ok(settings);
        };
        settings.partitioned = storage.partitioned;
        if let Some(interval) = &storage.interval {
            settings.interval =
                interval
                    .parse()
                    .map_err(|e: crate::partition::IntervalError| {
                        ConfigError::Storage(e.to_string())
                    })?;
        }
        if let Some(premake) = storage.premake {
            settings.premake = u32::try_from(premake)
                .ok()
                .filter(|p| *p <= MAX_PREMAKE)
                .ok_or_else(|| {
                    ConfigError::Storage(format!(
                        "premake = {premake} is out of range; use 0 to {MAX_PREMAKE} future partitions (default {DEFAULT_PREMAKE})"
                    ))
                })?;
        }
        if let Some(retired) = &storage.retired_partitions {
            settings.retired_partitions = retired.parse().map_err(ConfigError::Storage)?;
        }
        Ok(settings)
    }

    /// The audit schema.
    pub fn audit_schema(&self) -> Result<Ident, ConfigError> {
        Ident::parse(self.schema.as_deref().unwrap_or(DEFAULT_SCHEMA)).map_err(ConfigError::Schema)
    }

    /// Every configured table with its validated policy.
    pub fn tables(&self) -> Result<BTreeMap<TableName, TableCapture>, ConfigError> {
        let mut out = BTreeMap::new();
        for (key, policy) in &self.capture.tables {
            let table: TableName = key.parse().map_err(|source| ConfigError::TableName {
                name: key.clone(),
                source,
            })?;
            policy.validate().map_err(|source| ConfigError::Policy {
                table: table.display_name(),
                source,
            })?;
            if out.insert(table.clone(), policy.clone()).is_some() {
                return Err(ConfigError::DuplicateTable(table.display_name()));
            }
        }
        Ok(out)
    }

    /// The tables of `[coverage] expected_tables`, parsed (`users` means `public.users`).
    pub fn expected_tables(&self) -> Result<Vec<TableName>, ConfigError> {
        self.coverage
            .expected_tables
            .iter()
            .map(|name| {
                name.parse().map_err(|source| ConfigError::ExpectedTable {
                    name: name.clone(),
                    source,
                })
            })
            .collect()
    }

    /// The validated retention policy, or `None` when the file has no `[retention]` section.
    pub fn retention_policy(&self) -> Result<Option<RetentionPolicy>, ConfigError> {
        match &self.retention {
            None => Ok(None),
            Some(table) => Ok(Some(RetentionPolicy::from_table(table)?)),
        }
    }

    /// The policy for one table (empty when the file does not mention it).
    pub fn table_policy(&self, table: &TableName) -> TableCapture {
        self.tables()
            .ok()
            .and_then(|mut t| t.remove(table))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_parses() {
        let cfg = Config::from_toml(
            r#"
schema = "public"
[capture.tables.users]
exclude = ["password_hash"]
mask = ["email"]
store_changed_from = true
except_columns = ["updated_at"]
[coverage]
expected_tables = ["users", "posts"]
[retention]
enabled = true
keep_days = 90
"#,
        )
        .unwrap();
        let p = cfg.table_policy(&"public.users".parse().unwrap());
        assert!(p.store_changed_from);
        assert_eq!(p.except_columns, ["updated_at"]);
        assert_eq!(cfg.coverage.expected_tables, ["users", "posts"]);
        let retention = cfg.retention_policy().unwrap().unwrap();
        assert!(retention.enabled);
        assert_eq!(retention.window_seconds(), 90 * 86_400);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Config::from_toml("[capture.tables.users]\nexclud = [\"a\"]").unwrap_err();
        assert!(e.to_string().contains("exclud"), "{e}");
        let e = Config::from_toml("[capture.tables.users]\nexclude = [\"a\"]\nmask = [\"a\"]")
            .unwrap_err();
        assert!(matches!(e, ConfigError::Policy { .. }), "{e}");
        let e = Config::from_toml("[capture.tables.\"bad name\"]").unwrap_err();
        assert!(matches!(e, ConfigError::TableName { .. }), "{e}");
        let e = Config::from_toml("[capture.tables.users]\n[capture.tables.\"public.users\"]")
            .unwrap_err();
        assert!(matches!(e, ConfigError::DuplicateTable(_)), "{e}");
        let e = Config::from_toml("schema = \"a b\"").unwrap_err();
        assert!(matches!(e, ConfigError::Schema(_)), "{e}");
        assert!(Config::from_toml("schema = [").is_err());
        let e = Config::from_toml("[retention]\nenabled = true").unwrap_err();
        assert!(
            matches!(e, ConfigError::Retention(RetentionError::MissingWindow)),
            "{e}"
        );
        assert_eq!(Config::from_toml("").unwrap().retention_policy(), Ok(None));
        let e =
            Config::from_toml("[storage]\npartitioned = true\ninterval = \"year\"").unwrap_err();
        assert!(
            e.to_string().contains("\"year\"") && e.to_string().contains("day, week or month"),
            "{e}"
        );
        let e = Config::from_toml("[storage]\npremake = -1").unwrap_err();
        assert!(
            e.to_string().contains("premake = -1 is out of range"),
            "{e}"
        );
        let e = Config::from_toml("[storage]\nretired_partitions = \"keep\"").unwrap_err();
        assert!(e.to_string().contains("\"drop\" or \"detach\""), "{e}");
        assert!(Config::from_toml("[storage]\npartition = true").is_err());
        let cfg =
            Config::from_toml("[storage]\npartitioned = true\ninterval = \"day\"\npremake = 7")
                .unwrap();
        assert_eq!(
            cfg.install_options().unwrap().partitioning,
            Some(crate::partition::PartitionInterval::Day)
        );
        assert_eq!(cfg.storage_settings().unwrap().premake, 7);
        assert_eq!(
            Config::default().install_options().unwrap().partitioning,
            None
        );
        let e = Config::from_toml("[coverage]\nexpected_tables = [\"a.b.c\"]").unwrap_err();
        assert!(matches!(e, ConfigError::ExpectedTable { .. }), "{e}");
    }
}
