//! Hostile header values (64 KB, tabs, C1 control characters, garbage forwarding headers) go
//! through the whole stack (layer -> AuditedTx -> write -> capture) without a 500: bad values
//! are dropped and the write is captured without them.

use serde_json::json;
use threadline_tests::{Req, Stack, captured, on_every_stack};

on_every_stack!(hostile_headers_are_dropped_not_500);

async fn hostile_headers_are_dropped_not_500(stack: &Stack) {
    let big = "r".repeat(64 * 1024);
    let cases: Vec<Vec<(&'static str, String)>> = vec![
        vec![
            ("x-request-id", big.clone()),
            ("x-correlation-id", big.clone()),
        ],
        vec![
            ("x-request-id", format!("a\t{big}")),
            ("x-correlation-id", "tab\there".to_owned()),
        ],
        vec![
            ("x-request-id", "c1\u{85}control".to_owned()),
            ("x-correlation-id", "\u{9b}31m".to_owned()),
        ],
        vec![("x-user-id", big.clone()), ("x-forwarded-for", big.clone())],
        vec![(
            "x-forwarded-for",
            "1.2.3.4, ::ffff:zz, \t, 999.1.1.1".to_owned(),
        )],
    ];
    for (i, headers) in cases.iter().enumerate() {
        let mut req = Req::post("/posts", json!({ "title": format!("case {i}") }));
        for (name, value) in headers {
            req = req.header(name, value.clone());
        }
        let res = stack.send(req).await;
        assert_eq!(res.status, 201, "{} case {i}: {:?}", stack.name, res.status);
    }
    let changes = captured(&stack.db).await;
    assert_eq!(changes.len(), cases.len(), "{}", stack.name);
    for change in &changes {
        assert_eq!(change.request_id, None, "{}", stack.name);
        assert_eq!(change.correlation_id, None, "{}", stack.name);
        assert_eq!(
            change.actor_ref,
            Some(json!({"type": "anonymous"})),
            "{}: an oversized user id must not become an actor (the request is anonymous)",
            stack.name
        );
    }
}
