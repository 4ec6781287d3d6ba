//! Helpers of the storage suites: the explorer over a pool, driven with `oneshot`.
#![allow(dead_code, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use sqlx::PgPool;
use threadline_axum::explorer::{self, ExplorerOptions};
use threadline_axum::{ActorRef, ActorType, ThreadlineLayer};
use threadline_sqlx::Threadline;
use tower::ServiceExt;

/// GETs `uri` of the explorer mounted at `/admin/audit` over `pool`, as `admin:alice`.
pub(crate) async fn explorer_get(pool: &PgPool, uri: &str) -> (StatusCode, String) {
    let admins = explorer::actor_is(|actor: &ActorRef| actor.kind() == ActorType::Admin);
    let app: Router = Router::new()
        .nest_service(
            "/admin/audit",
            explorer::router(Threadline::new(pool.clone()), ExplorerOptions::new(admins)),
        )
        .layer(ThreadlineLayer::new(|_: &http::request::Parts| {
            ActorRef::admin("alice").ok()
        }));
    let res = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}
