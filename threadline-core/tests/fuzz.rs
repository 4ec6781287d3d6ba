//! Property tests over every parser that takes user input: identifiers and table names,
//! `threadline.toml`, `ActorRef`, the timeline cursor, and the W3C `traceparent` header. None may panic; valid input must
//! round-trip. Case counts: `PROPTEST_CASES` (default below); figures in guides/security.md.

use proptest::prelude::*;
use threadline_core::query::Cursor;
use threadline_core::{
    ActorRef, ActorType, CapturePlan, Config, Ident, InstallOptions, TableCapture, TableName,
    TraceId, TraceParent, quote_ident, quote_literal,
};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 2_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any text, biased toward the characters that matter to SQL names and JSON.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"'. a-zA-Z0-9_$;\\\\\u{0}\u{7f}\u{85}é日本-]{0,80}",
        proptest::collection::vec(any::<u8>(), 0..80)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// A valid catalog name: 1..=63 bytes, no NUL.
fn catalog_name() -> impl Strategy<Value = String> {
    "[^\u{0}]{1,63}".prop_filter("at most 63 bytes", |s| s.len() <= 63)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn table_name_parsing_never_panics_and_round_trips(input in hostile_text()) {
        if let Ok(table) = input.parse::<TableName>() {
            // What Display writes parses back to the same name.
            let again: TableName = table.to_string().parse().expect("quoted form parses");
            prop_assert_eq!(&again, &table);
            let shown: TableName = table.display_name().parse().expect("display form parses");
            prop_assert_eq!(shown, table);
        }
        let _ = Ident::parse(&input);
    }

    #[test]
    fn any_catalog_name_quotes_and_parses_back(schema in catalog_name(), name in catalog_name()) {
        let table = TableName::new(Ident::new(schema).unwrap(), Ident::new(name).unwrap());
        let parsed: TableName = table.to_string().parse().expect("quoted name parses");
        prop_assert_eq!(&parsed, &table);
        // The capture SQL for it can be generated (no panic, bounded function name).
        let plan = CapturePlan::new(
            &InstallOptions::default(),
            table,
            Some(vec![Ident::new("id").unwrap()]),
            None,
            &TableCapture::default(),
        ).expect("plan");
        prop_assert!(threadline_core::capture_function_name(plan.table()).len() <= 63);
        prop_assert!(!plan.sql().is_empty());
    }

    #[test]
    fn quoting_is_reversible(s in any::<String>()) {
        let q = quote_ident(&s);
        prop_assert_eq!(q[1..q.len() - 1].replace("\"\"", "\""), s.clone());
        let l = quote_literal(&s);
        prop_assert_eq!(l[1..l.len() - 1].replace("''", "'"), s);
    }

    #[test]
    fn config_parsing_never_panics(text in hostile_text()) {
        let _ = Config::from_toml(&text);
    }

    #[test]
    fn structured_config_parsing_never_panics(
        table in hostile_text(),
        column in hostile_text(),
        placeholder in hostile_text(),
        schema in hostile_text(),
        role in hostile_text(),
        days in any::<i64>(),
    ) {
        let text = format!(
            "schema = {schema:?}\nowner_role = {role:?}\n[capture.tables.{table:?}]\nexclude = [{column:?}]\nmask = [{column:?}]\nmask_placeholder = {placeholder:?}\n[retention]\nenabled = true\nkeep_days = {days}\n"
        );
        if let Ok(cfg) = Config::from_toml(&text) {
            let _ = cfg.tables();
            let _ = cfg.retention_policy();
            let _ = cfg.install_options();
        }
    }

    #[test]
    fn actor_parsing_never_panics(text in hostile_text()) {
        if let Ok(actor) = ActorRef::from_json(&text) {
            prop_assert_eq!(ActorRef::from_json(&actor.to_json()).expect("round trip"), actor);
        }
        let _ = ActorRef::parse_short(&text);
    }

    #[test]
    fn actor_json_with_any_type_and_id_never_panics(kind in hostile_text(), id in hostile_text()) {
        let json = serde_json::json!({"type": kind, "id": id}).to_string();
        let _ = ActorRef::from_json(&json);
        for t in ActorType::ALL {
            if let Ok(actor) = ActorRef::new(t, id.clone()) {
                prop_assert_eq!(ActorRef::from_json(&actor.to_json()).expect("round trip"), actor);
            }
        }
    }

    #[test]
    fn cursor_decoding_never_panics(text in hostile_text()) {
        if let Ok(cursor) = text.parse::<Cursor>() {
            prop_assert_eq!(cursor.to_string().parse::<Cursor>().expect("round trip"), cursor);
        }
    }

    #[test]
    fn base64_shaped_cursors_are_rejected_not_panicking(text in "[A-Za-z0-9_-]{0,60}") {
        let _ = text.parse::<Cursor>();
    }

    #[test]
    fn traceparent_parsing_never_panics(text in hostile_text()) {
        if let Ok(tp) = TraceParent::parse(&text) {
            // Whatever is accepted has a well-formed trace id that round-trips.
            prop_assert_eq!(tp.trace_id.to_string().parse::<TraceId>(), Ok(tp.trace_id));
            prop_assert_ne!(tp.version, 0xff);
        }
        let _ = text.parse::<TraceId>();
    }

    #[test]
    fn near_valid_traceparents_are_accepted_exactly_when_well_formed(
        text in "[0-9a-fA-F]{2}-[0-9a-fA-F]{32}-[0-9a-fA-F]{16}-[0-9a-fA-F]{2}(-[0-9a-z]{0,4})?",
    ) {
        let lower = !text.bytes().any(|b| b.is_ascii_uppercase());
        let version = &text[..2];
        let well_formed = lower
            && version != "ff"
            && (text.len() == 55 || version != "00")
            && text[3..35] != "0".repeat(32)
            && text[36..52] != "0".repeat(16);
        prop_assert_eq!(TraceParent::parse(&text).is_ok(), well_formed, "{}", text);
    }
}
