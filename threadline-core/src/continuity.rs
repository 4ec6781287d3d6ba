//! Brownfield continuity (SPEC §7): the cutover steps for a database that already has data.

use crate::ident::TableName;

/// The cutover steps, naming `tables` (the expected tables) where a command needs them.
///
/// ```
/// let steps = threadline_core::cutover_steps(&["posts".parse()?]);
/// assert!(steps.contains("threadline gen-triggers --tables public.posts"));
/// # Ok::<(), threadline_core::IdentError>(())
/// ```
pub fn cutover_steps(tables: &[TableName]) -> String {
    let names: Vec<String> = tables.iter().map(TableName::display_name).collect();
    let (list, one) = match names.first() {
        Some(first) => (names.join(","), first.clone()),
        None => ("<table>,<table>".to_owned(), "<table>".to_owned()),
    };
    format!(
        "Brownfield cutover: capture begins at T0, the moment a table's capture triggers are applied.
Nothing is invented for changes before T0.

1. Install the audit schema (once):
     threadline install && sqlx migrate run
2. Attach capture to the tables (redaction from threadline.toml):
     threadline gen-triggers --tables {list} && sqlx migrate run
3. List the tables in [coverage] expected_tables and verify them:
     threadline verify-coverage
4. Check that each table is capture-ready (exists, covered, enabled, current):
     threadline continuity --table {one}
5. Optional baseline: record every existing row once as op = 'snapshot', redacted like captured rows:
     threadline snapshot --table {one}
6. Check the whole installation:
     threadline doctor

Until a row is changed (or snapshotted) after T0, history() for it is empty and as_of() reports
\"before capture began\"; with a snapshot, as_of() before the snapshot still does.
"
    )
}
