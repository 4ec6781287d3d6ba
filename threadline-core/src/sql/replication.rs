//! The reporting node (SPEC §10): SQL that replicates the audit trail to a second
//! PostgreSQL by logical replication, inserts only, so that the primary can purge (delete
//! rows or drop partitions) while the reporting node keeps the whole trail.

use crate::ident::{Ident, quote_literal};
use crate::sql::install::{AUDIT_TABLES, InstallOptions, install_sql};

/// The three scripts of a reporting node, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicationSql {
    /// On the primary (needs `wal_level = logical`): the publication.
    pub publication: String,
    /// On the reporting node, first: the audit schema (the plain install, without hardening
    /// roles, which the reporting node may not have).
    pub reporting_schema: String,
    /// On the reporting node, then: the subscription (not inside a transaction block).
    pub subscription: String,
}

/// The SQL of a reporting node for the audit tables of `install`: a publication named
/// `publication` of the three audit tables with `publish = 'insert'` (deletes, updates and
/// truncates on the primary are not sent, and dropping a partition is DDL, never replicated)
/// and `publish_via_partition_root = true` (a partitioned trail replicates as its parent
/// tables, whatever the partitions on either side), and a subscription named `subscription`
/// that connects with `primary_conninfo` and first copies the rows already there.
///
/// ```
/// use threadline_core::{Ident, InstallOptions, sql::replication_sql};
/// let name = Ident::new("threadline_audit")?;
/// let sql = replication_sql(&InstallOptions::default(), &name, &name, "host=db1 dbname=app");
/// assert!(sql.publication.contains("publish_via_partition_root = true"));
/// # Ok::<(), threadline_core::IdentError>(())
/// ```
pub fn replication_sql(
    install: &InstallOptions,
    publication: &Ident,
    subscription: &Ident,
    primary_conninfo: &str,
) -> ReplicationSql {
    let schema = &install.schema;
    let tables = AUDIT_TABLES
        .iter()
        .map(|t| format!("{schema}.{t}"))
        .collect::<Vec<_>>()
        .join(", ");
    let publication_sql = format!(
        "-- On the primary (wal_level = logical; changing it needs a restart).\n\
         CREATE PUBLICATION {publication} FOR TABLE {tables}\n    \
         WITH (publish = 'insert', publish_via_partition_root = true);\n"
    );
    let reporting = InstallOptions::with_schema(schema.clone());
    let subscription_sql = format!(
        "-- On the reporting node, after the audit schema (not inside a transaction block).\n\
         -- copy_data copies the rows already on the primary, then inserts stream as they commit.\n\
         CREATE SUBSCRIPTION {subscription}\n    CONNECTION {conninfo}\n    \
         PUBLICATION {publication}\n    WITH (copy_data = true);\n",
        conninfo = quote_literal(primary_conninfo),
    );
    ReplicationSql {
        publication: publication_sql,
        reporting_schema: format!(
            "-- On the reporting node, first: the audit tables (plain layout) for the subscription.\n{}",
            install_sql(&reporting)
        ),
        subscription: subscription_sql,
    }
}
