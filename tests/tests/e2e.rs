//! HTTP request -> layer -> AuditedTx -> write -> trigger -> audit query, with one test body
//! per behaviour run on every web stack.

use serde_json::json;
use threadline_sqlx::{ActorRef, Page, Threadline};
use threadline_tests::{Req, Stack, captured, futures_join_all, on_every_stack};

on_every_stack!(
    write_carries_actor_request_and_correlation,
    rolled_back_handler_captures_nothing,
    fifty_concurrent_actors_each_keep_their_own,
    audited_records_ok_and_links_to_the_changes,
    audited_records_error_for_a_failed_handler,
    no_actor_means_anonymous_in_changes_actions_and_queries,
);

fn new_post(title: &str) -> Req {
    Req::post("/posts", json!({ "title": title }))
}

async fn write_carries_actor_request_and_correlation(stack: &Stack) {
    let res = stack
        .send(
            new_post("Hello")
                .header("x-user-id", "7")
                .header("x-request-id", "req-A")
                .header("x-correlation-id", "corr-A"),
        )
        .await;
    assert_eq!(res.status, 201, "{}: {:?}", stack.name, res);
    let id = res.json()["id"].as_i64().unwrap();
    let changes = captured(&stack.db).await;
    assert_eq!(changes.len(), 1, "{}", stack.name);
    let change = &changes[0];
    assert_eq!(change.op, "insert");
    assert_eq!(change.table_pk, json!({ "id": id }));
    assert_eq!(change.data_after.as_ref().unwrap()["title"], "Hello");
    assert_eq!(change.actor_ref, Some(json!({"type": "user", "id": "7"})));
    assert_eq!(change.request_id.as_deref(), Some("req-A"));
    assert_eq!(change.correlation_id.as_deref(), Some("corr-A"));
}

async fn rolled_back_handler_captures_nothing(stack: &Stack) {
    let res = stack
        .send(Req::post("/posts/rollback", json!({"title": "gone"})).header("x-user-id", "7"))
        .await;
    assert_eq!(res.status, 200, "{}: {:?}", stack.name, res);
    let (posts, transactions): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM audit_transactions)",
    )
    .fetch_one(&stack.db.pool)
    .await
    .unwrap();
    assert_eq!((posts, transactions), (0, 0), "{}", stack.name);
    assert!(captured(&stack.db).await.is_empty());
}

async fn fifty_concurrent_actors_each_keep_their_own(stack: &Stack) {
    let requests = (0..50).map(|i| {
        stack.send(
            new_post(&format!("by {i}"))
                .header("x-user-id", format!("u{i}"))
                .header("x-request-id", format!("r{i}")),
        )
    });
    let responses = futures_join_all(requests).await;
    assert!(responses.iter().all(|r| r.status == 201), "{}", stack.name);
    let changes = captured(&stack.db).await;
    assert_eq!(changes.len(), 50);
    for change in changes {
        let title = change.data_after.as_ref().unwrap()["title"]
            .as_str()
            .unwrap();
        let i = title.strip_prefix("by ").unwrap();
        assert_eq!(
            change.actor_ref,
            Some(json!({"type": "user", "id": format!("u{i}")})),
            "{}: {title}",
            stack.name
        );
        assert_eq!(change.request_id, Some(format!("r{i}")));
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Action {
    name: String,
    status: String,
    actor_ref: serde_json::Value,
    request_id: Option<String>,
    correlation_id: Option<String>,
    transaction_id: Option<i64>,
}

async fn actions(stack: &Stack) -> Vec<Action> {
    sqlx::query_as(
        "SELECT name, status, actor_ref, request_id, correlation_id, transaction_id
         FROM audit_actions ORDER BY id",
    )
    .fetch_all(&stack.db.pool)
    .await
    .unwrap()
}

async fn audited_records_ok_and_links_to_the_changes(stack: &Stack) {
    let created = stack.send(new_post("Draft").header("x-user-id", "7")).await;
    let id = created.json()["id"].as_i64().unwrap();
    let res = stack
        .send(
            Req::post(format!("/posts/{id}/publish"), json!({}))
                .header("x-user-id", "8")
                .header("x-request-id", "req-pub")
                .header("x-correlation-id", "corr-pub"),
        )
        .await;
    assert_eq!(res.status, 200, "{}: {:?}", stack.name, res);
    let actions = actions(stack).await;
    assert_eq!(actions.len(), 1, "{}", stack.name);
    let action = &actions[0];
    assert_eq!(action.name, "post.published");
    assert_eq!(action.status, "ok");
    assert_eq!(action.actor_ref, json!({"type": "user", "id": "8"}));
    assert_eq!(action.request_id.as_deref(), Some("req-pub"));
    assert_eq!(action.correlation_id.as_deref(), Some("corr-pub"));
    let update = captured(&stack.db)
        .await
        .into_iter()
        .find(|c| c.op == "update")
        .unwrap();
    assert_eq!(update.request_id.as_deref(), Some("req-pub"));
    assert_eq!(
        action.transaction_id,
        Some(update.transaction_id),
        "{}",
        stack.name
    );
}

async fn audited_records_error_for_a_failed_handler(stack: &Stack) {
    let res = stack
        .send(
            Req::post("/posts/999/publish", json!({}))
                .header("x-user-id", "8")
                .header("x-request-id", "req-missing"),
        )
        .await;
    assert_eq!(res.status, 404, "{}: {:?}", stack.name, res);
    let actions = actions(stack).await;
    assert_eq!(actions.len(), 1, "{}", stack.name);
    assert_eq!(actions[0].status, "error");
    assert_eq!(actions[0].request_id.as_deref(), Some("req-missing"));
    assert_eq!(actions[0].transaction_id, None);
    assert!(captured(&stack.db).await.is_empty());
}

/// "No actor" has one meaning: a request whose actor function returns `None` stores the
/// anonymous actor on its changes and on its action alike, and the anonymous queries find both;
/// only a write made outside any Threadline context stores NULL, and those queries skip it.
async fn no_actor_means_anonymous_in_changes_actions_and_queries(stack: &Stack) {
    let created = stack.send(new_post("Draft")).await;
    assert_eq!(created.status, 201, "{}: {:?}", stack.name, created);
    let id = created.json()["id"].as_i64().unwrap();
    let res = stack
        .send(Req::post(format!("/posts/{id}/publish"), json!({})).header("x-request-id", "anon"))
        .await;
    assert_eq!(res.status, 200, "{}: {:?}", stack.name, res);
    sqlx::query("UPDATE posts SET title = 'raw' WHERE id = $1")
        .bind(id)
        .execute(&stack.db.pool)
        .await
        .unwrap();

    let anonymous = json!({"type": "anonymous"});
    let changes = captured(&stack.db).await;
    let actors: Vec<_> = changes.iter().map(|c| c.actor_ref.clone()).collect();
    assert_eq!(
        actors,
        [Some(anonymous.clone()), Some(anonymous.clone()), None],
        "{}: insert and publish through the layer, then a raw write",
        stack.name
    );
    let actions = actions(stack).await;
    assert_eq!(actions.len(), 1, "{}", stack.name);
    assert_eq!(actions[0].actor_ref, anonymous);

    let threadline = Threadline::new(stack.db.pool.clone());
    let history = threadline
        .actor_history(&ActorRef::anonymous(), Page::first())
        .await
        .unwrap();
    let mut found: Vec<i64> = history.items.iter().map(|t| t.id).collect();
    found.sort_unstable();
    let mut expected = vec![changes[0].transaction_id, changes[1].transaction_id];
    expected.sort_unstable();
    assert_eq!(found, expected, "{}", stack.name);
    let publish = history
        .items
        .iter()
        .find(|t| t.id == changes[1].transaction_id)
        .unwrap();
    assert_eq!(publish.actor().unwrap(), Some(ActorRef::anonymous()));
}
