//! Hardened install: the audit trail belongs to a dedicated owner role, so the application
//! role can neither write nor alter it except through capture and action recording.
//!
//! When [`InstallOptions::owner_role`] is set, the install SQL and every capture SQL end with
//! separate statements that
//! * make the owner role own the audit tables (and their identity sequences) and every
//!   `threadline_*` function in the audit schema;
//! * make those functions `SECURITY DEFINER` with `search_path` pinned to
//!   `pg_catalog, pg_temp`, so objects planted earlier in a caller's `search_path` are never
//!   used (every audit table reference in them is schema-qualified);
//! * revoke everything on the audit tables from `PUBLIC`, and `EXECUTE` on the internal
//!   functions, leaving `threadline_record_action` as the one entry point for actions;
//! * grant `SELECT` on the audit tables to each reader role.
//!
//! The statements are generated separately from the function bodies, so hardening never
//! changes what the functions do, only who they run as.

use std::fmt::Write as _;

use crate::ident::{Ident, TableName, quote_literal};
use crate::sql::install::{AUDIT_TABLES, InstallOptions};
use crate::sql::seal::SEAL_TABLES;

/// The `search_path` pinned on every hardened function.
pub const PINNED_SEARCH_PATH: &str = "pg_catalog, pg_temp";

/// The action-recording function (part of every install, hardened or not): the one way
/// Threadline writes `audit_actions`, so that a hardened install can deny direct `INSERT`.
/// With `p_link` the action joins the current transaction's audit row (created on demand) and
/// request, correlation and trace ids default to the transaction's context settings.
pub(crate) const RECORD_ACTION_FUNCTION: &str = r#"
-- Records a semantic action. Threadline writes audit_actions only through this function, so a
-- hardened install can deny direct INSERT to the application role. (The signature before
-- p_trace_id was added is dropped, so that no caller writes actions without it.)
DROP FUNCTION IF EXISTS @S.threadline_record_action(
    text, jsonb, text, text, text, text, text, text, text, text, boolean, bigint);
CREATE OR REPLACE FUNCTION @S.threadline_record_action(
    p_name text, p_actor_ref jsonb, p_status text, p_verb text, p_category text,
    p_reason text, p_comment text, p_correlation_id text, p_request_id text, p_job_id text,
    p_link boolean, p_transaction_id bigint, p_trace_id text
) RETURNS @S.audit_actions
LANGUAGE sql AS $threadline$
    INSERT INTO @S.audit_actions
        (name, actor_ref, status, verb, category, reason, comment, correlation_id, request_id,
         job_id, transaction_id, trace_id)
    VALUES (
        p_name, p_actor_ref, p_status, p_verb, p_category, p_reason, p_comment,
        CASE WHEN p_link
            THEN COALESCE(p_correlation_id, NULLIF(current_setting('threadline.correlation_id', true), ''))
            ELSE p_correlation_id END,
        CASE WHEN p_link
            THEN COALESCE(p_request_id, NULLIF(current_setting('threadline.request_id', true), ''))
            ELSE p_request_id END,
        p_job_id,
        CASE WHEN p_link THEN @S.threadline_transaction_id() ELSE p_transaction_id END,
        CASE WHEN p_link
            THEN COALESCE(p_trace_id, NULLIF(current_setting('threadline.trace_id', true), ''))
            ELSE p_trace_id END)
    RETURNING *
$threadline$;
"#;

/// Hardening statements for the install schema; empty without an owner role.
pub(crate) fn install_hardening(options: &InstallOptions) -> String {
    let Some(owner) = &options.owner_role else {
        return String::new();
    };
    let s = &options.schema;
    let mut out = format!(
        "\n-- Hardened mode: {owner} owns the audit trail (generated; see guides/security.md).\n"
    );
    out.push_str(&role_guard(owner));
    let _ = writeln!(out, "GRANT USAGE, CREATE ON SCHEMA {s} TO {owner};");
    for table in AUDIT_TABLES.iter().chain(&SEAL_TABLES) {
        let _ = writeln!(out, "ALTER TABLE {s}.{table} OWNER TO {owner};");
    }
    let tables = audit_table_list(s);
    let _ = writeln!(out, "REVOKE ALL ON TABLE {tables} FROM PUBLIC;");
    // Every Threadline function in the schema, whatever its signature: the shared ones and
    // capture functions generated before this install ran.
    let body = format!(
        "DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
             WHERE p.pronamespace = {schema}::regnamespace AND p.proname LIKE 'threadline\\_%'
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO %I', f, {owner_lit});
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = {PINNED_SEARCH_PATH}', f);
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END
",
        schema = quote_literal(&s.quoted()),
        owner_lit = quote_literal(owner.as_str()),
    );
    let tag = super::dollar_tag(&body);
    let _ = write!(out, "DO {tag}\n{body}{tag};\n");
    let _ = writeln!(
        out,
        "GRANT EXECUTE ON FUNCTION {s}.threadline_record_action(text, jsonb, text, text, text, text, text, text, text, text, boolean, bigint, text) TO PUBLIC;"
    );
    for reader in &options.reader_roles {
        let _ = writeln!(out, "GRANT USAGE ON SCHEMA {s} TO {reader};");
        let _ = writeln!(out, "GRANT SELECT ON TABLE {tables} TO {reader};");
    }
    out
}

/// Hardening statements for one capture function; empty without an owner role.
///
/// The owner role gets `SELECT` on the audited table: the `TRUNCATE` trigger, running as the
/// owner, counts (or images) the rows about to be removed. It sees no more than the insert,
/// update and delete triggers already hand it through their transition tables.
pub(crate) fn capture_hardening(
    owner: Option<&Ident>,
    function: &str,
    table: &TableName,
) -> String {
    let Some(owner) = owner else {
        return String::new();
    };
    format!(
        "ALTER FUNCTION {function}() OWNER TO {owner};\n\
         ALTER FUNCTION {function}() SECURITY DEFINER SET search_path = {PINNED_SEARCH_PATH};\n\
         REVOKE ALL ON FUNCTION {function}() FROM PUBLIC;\n\
         GRANT SELECT ON TABLE {table} TO {owner};\n"
    )
}

/// Fails early, with the fix, when the owner role does not exist.
fn role_guard(owner: &Ident) -> String {
    let body = format!(
        "BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {lit}) THEN
        RAISE EXCEPTION 'threadline: owner role % does not exist', {lit}
            USING HINT = pg_catalog.format('create it first: CREATE ROLE %I NOLOGIN; GRANT %I TO <the role that runs migrations>;', {lit}, {lit});
    END IF;
END
",
        lit = quote_literal(owner.as_str())
    );
    let tag = super::dollar_tag(&body);
    format!("DO {tag}\n{body}{tag};\n")
}

fn audit_table_list(schema: &Ident) -> String {
    AUDIT_TABLES
        .iter()
        .chain(&SEAL_TABLES)
        .map(|t| format!("{schema}.{t}"))
        .collect::<Vec<_>>()
        .join(", ")
}
