//! The W3C `traceparent` header through the whole stack (layer -> AuditedTx -> write ->
//! capture, and `#[audited]`): a valid one stores its trace id on the transaction and the
//! action; a malformed one is dropped with a logged warning, never an error response.

use serde_json::json;
use threadline_test_support::logs::Recorder;
use threadline_tests::{Req, Stack, on_every_stack};

on_every_stack!(
    a_valid_traceparent_is_stored_with_the_changes_and_the_action,
    a_malformed_traceparent_is_dropped_and_logged,
);

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The trace id of every audit transaction, oldest first.
async fn transaction_traces(stack: &Stack) -> Vec<Option<String>> {
    sqlx::query_scalar("SELECT trace_id FROM audit_transactions ORDER BY id")
        .fetch_all(&stack.db.pool)
        .await
        .unwrap()
}

async fn a_valid_traceparent_is_stored_with_the_changes_and_the_action(stack: &Stack) {
    let created = stack
        .send(
            Req::post("/posts", json!({"title": "traced"}))
                .header("x-user-id", "7")
                .header("traceparent", TRACEPARENT),
        )
        .await;
    assert_eq!(created.status, 201, "{}: {:?}", stack.name, created);
    let id = created.json()["id"].as_i64().unwrap();
    let published = stack
        .send(
            Req::post(format!("/posts/{id}/publish"), json!({}))
                .header("x-user-id", "7")
                .header("traceparent", TRACEPARENT),
        )
        .await;
    assert_eq!(published.status, 200, "{}: {:?}", stack.name, published);
    assert_eq!(
        transaction_traces(stack).await,
        [Some(TRACE.to_owned()), Some(TRACE.to_owned())],
        "{}",
        stack.name
    );
    let action: (String, Option<String>) =
        sqlx::query_as("SELECT name, trace_id FROM audit_actions")
            .fetch_one(&stack.db.pool)
            .await
            .unwrap();
    assert_eq!(
        action,
        ("post.published".to_owned(), Some(TRACE.to_owned())),
        "{}",
        stack.name
    );
}

async fn a_malformed_traceparent_is_dropped_and_logged(stack: &Stack) {
    let recorder = Recorder::default();
    let guard = tracing::subscriber::set_default(recorder.clone());
    let malformed = [
        TRACEPARENT.to_uppercase(),
        TRACEPARENT.replace("00-", "ff-"),
        format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
        "garbage".to_owned(),
    ];
    for value in &malformed {
        let res = stack
            .send(
                Req::post("/posts", json!({"title": value}))
                    .header("x-user-id", "7")
                    .header("traceparent", value.clone()),
            )
            .await;
        assert_eq!(res.status, 201, "{} {value:?}: {:?}", stack.name, res);
    }
    drop(guard);
    assert_eq!(
        transaction_traces(stack).await,
        vec![None; malformed.len()],
        "{}",
        stack.name
    );
    let warnings: Vec<String> = recorder
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("WARN ") && l.contains("header=traceparent"))
        .collect();
    assert_eq!(
        warnings.len(),
        malformed.len(),
        "{}: {:?}",
        stack.name,
        recorder.lines()
    );
    for (warning, reason) in warnings.iter().zip([
        "trace id is not 32 lowercase hex digits",
        "version ff is invalid",
        "trace id is all zeros",
        "too short",
    ]) {
        assert!(
            warning.contains(&format!("reason=invalid traceparent: {reason};")),
            "{}: {warning}",
            stack.name
        );
    }
}
