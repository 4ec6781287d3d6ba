//! The exploration API's typed errors for bad names, keys, filters, page sizes and actions.

mod support;

use chrono::{Duration, Utc};
use serde_json::json;
use threadline_core::query::QueryError;
use threadline_sqlx::{ActionOptions, Error, Page, TimelineFilter};
use threadline_test_support::user;

use support::{mixed_trail, query_error};

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let (db, tl) = mixed_trail().await;
    // Table names.
    let ident = |e: Error| match e {
        Error::Core(threadline_core::Error::Ident(e)) => e,
        other => panic!("expected a name error, got {other:?}"),
    };
    use threadline_core::IdentError;
    assert!(matches!(
        ident(tl.history("my table", 1).await.unwrap_err()),
        IdentError::InvalidChar { ch: ' ', .. }
    ));
    assert!(matches!(
        ident(tl.history("a.b.c", 1).await.unwrap_err()),
        IdentError::Malformed(_)
    ));
    assert_eq!(
        ident(tl.as_of("", 1, Utc::now()).await.unwrap_err()),
        IdentError::Empty
    );
    assert!(matches!(
        tl.history("nope", 1).await.unwrap_err(),
        Error::TableNotFound(_)
    ));
    // Keys.
    assert!(matches!(
        query_error(tl.history("posts", json!(null)).await.unwrap_err()),
        QueryError::KeyValue(_)
    ));
    assert!(matches!(
        query_error(tl.as_of("posts", json!([1]), Utc::now()).await.unwrap_err()),
        QueryError::KeyValue(_)
    ));
    // Filters.
    let now = Utc::now();
    let backwards = TimelineFilter::new()
        .from(now)
        .to(now - Duration::seconds(1));
    for err in [
        tl.timeline(&backwards, Page::first()).await.unwrap_err(),
        tl.count(&backwards).await.unwrap_err(),
    ] {
        assert!(matches!(
            query_error(err),
            QueryError::Filter { field: "from", .. }
        ));
    }
    assert!(matches!(
        query_error(
            tl.count(&TimelineFilter::new().request_id(""))
                .await
                .unwrap_err()
        ),
        QueryError::Filter {
            field: "request_id",
            ..
        }
    ));
    // Page sizes.
    for size in [0, 1001] {
        let err = tl
            .timeline(&TimelineFilter::new(), Page::first().with_size(size))
            .await
            .unwrap_err();
        assert_eq!(query_error(err), QueryError::PageSize { size });
        let err = tl
            .actor_history(&user("1"), Page::first().with_size(size))
            .await
            .unwrap_err();
        assert_eq!(query_error(err), QueryError::PageSize { size });
    }
    assert!(
        tl.timeline(&TimelineFilter::new(), Page::first().with_size(1000))
            .await
            .is_ok()
    );
    // Action names and fields.
    let invalid = |e: Error| match e {
        Error::InvalidInput { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    };
    let u = user("1");
    for name in ["", "  ", &"x".repeat(257), "a\nb"] {
        let err = tl
            .record_action(name, &u, ActionOptions::new())
            .await
            .unwrap_err();
        assert_eq!(invalid(err), "action name", "{name:?}");
    }
    let err = tl
        .record_action(
            "ok.name",
            &u,
            ActionOptions::new().comment("x".repeat(1025)),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid(err), "comment");
    let err = tl
        .record_action("ok.name", &u, ActionOptions::new().job_id("a\0b"))
        .await
        .unwrap_err();
    assert_eq!(invalid(err), "job_id");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_actions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "refused actions write nothing");
}
