//! The audit explorer at `/admin/audit`, for the admin, and a browser sign-in page for it.

use axum::extract::Form;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use threadline_axum::explorer::{self, ExplorerOptions};
use threadline_axum::{ActorRef, ActorType};
use threadline_sqlx::Threadline;

use crate::app::{AppError, AppState, Login, login};

/// Where the explorer is mounted.
pub(crate) const PATH: &str = "/admin/audit";

/// Where a browser signs in.
pub(crate) const LOGIN_PATH: &str = "/login/browser";

/// The explorer at [`PATH`] (admins only, who may also revert; `nest_service`, so that
/// `PATH/` with a trailing slash is the explorer's timeline too), and the sign-in form at
/// [`LOGIN_PATH`].
pub(crate) fn routes(threadline: Threadline) -> Router<AppState> {
    let is_admin = |actor: &ActorRef| actor.kind() == ActorType::Admin;
    // The admin reads the trail, and may revert a transaction from its page, as itself.
    let options = ExplorerOptions::new(explorer::actor_is(is_admin))
        .allow_revert(explorer::actor_may_revert(is_admin))
        .title("axum-blog audit trail");
    Router::new()
        .nest_service(PATH, explorer::router(threadline, options))
        .route(LOGIN_PATH, get(login_page).post(login_form))
}

async fn login_page() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=en><meta charset=utf-8><title>Sign in · axum-blog</title>\
         <form method=post><label>User <input name=user value=admin></label> \
         <button type=submit>Sign in</button></form>\
         <p><code>admin</code> may open the audit explorer; any other name is a user.</p></html>",
    )
}

/// Signs in like `POST /login` (same cookie), then goes to the explorer.
async fn login_form(Form(form): Form<Login>) -> Result<Response, AppError> {
    let mut signed_in = login(Json(form)).await?;
    let mut redirect = Redirect::to(PATH).into_response();
    if let Some(cookie) = signed_in.headers_mut().remove(header::SET_COOKIE) {
        redirect.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(redirect)
}
