//! The revert form's anti-forgery token.
//!
//! The explorer gives each browser a random session value in an `HttpOnly`, `SameSite=Strict`
//! cookie. The token in the revert form is an HMAC-SHA256, under a server secret held in the
//! explorer's state, of that session value, the transaction to revert and the reverting actor.
//! A POST executes only when its token matches the one computed from its own cookie (compared
//! in constant time). Another site can make a browser send the cookie, or (from a sibling
//! subdomain) even plant one, but cannot read the page to learn a token, nor compute one
//! without the secret.

use hmac::{KeyInit, Mac};
use http::HeaderMap;
use http::header::COOKIE;
use sha2::Sha256;
use threadline_core::ActorRef;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The cookie that carries the session value.
pub(super) const COOKIE_NAME: &str = "threadline_explorer_session";

/// Random bytes from the operating system, or `None` when it has none to give.
pub(super) fn random<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).ok().map(|()| bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// A new session value (32 hex digits).
pub(super) fn new_session() -> Option<String> {
    random::<16>().map(|b| hex(&b))
}

/// The request's session value, when its cookie holds a well-formed one.
pub(super) fn session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 32 && unhex(v).is_some())
}

/// The `Set-Cookie` value for a new session, scoped to the explorer's path.
pub(super) fn set_cookie(session: &str, base: &str) -> String {
    let path = if base.is_empty() { "/" } else { base };
    format!("{COOKIE_NAME}={session}; Path={path}; HttpOnly; SameSite=Strict")
}

fn mac(secret: &[u8; 32], session: &str, transaction: i64, actor: &ActorRef) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in [
        "threadline.explorer.revert",
        session,
        &transaction.to_string(),
        &actor.to_string(),
    ] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac
}

/// The token for reverting `transaction` as `actor` in `session`.
pub(super) fn token(
    secret: &[u8; 32],
    session: &str,
    transaction: i64,
    actor: &ActorRef,
) -> String {
    hex(&mac(secret, session, transaction, actor)
        .finalize()
        .into_bytes())
}

/// Whether `given` is the token for this session, transaction and actor (constant time).
pub(super) fn verify(
    secret: &[u8; 32],
    session: &str,
    transaction: i64,
    actor: &ActorRef,
    given: &str,
) -> bool {
    unhex(given).is_some_and(|given| {
        mac(secret, session, transaction, actor)
            .verify_slice(&given)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_session_transaction_and_actor() {
        let secret = [7u8; 32];
        let alice = ActorRef::admin("alice").unwrap();
        let bob = ActorRef::admin("bob").unwrap();
        let s = new_session().unwrap();
        let t = token(&secret, &s, 42, &alice);
        assert!(verify(&secret, &s, 42, &alice, &t));
        assert!(!verify(&secret, &s, 43, &alice, &t));
        assert!(!verify(&secret, &s, 42, &bob, &t));
        assert!(!verify(&secret, &new_session().unwrap(), 42, &alice, &t));
        assert!(!verify(&[8u8; 32], &s, 42, &alice, &t));
        assert!(!verify(&secret, &s, 42, &alice, "zz"));
        assert!(!verify(&secret, &s, 42, &alice, ""));
    }

    #[test]
    fn the_session_comes_from_its_cookie_only_when_well_formed() {
        let mut headers = HeaderMap::new();
        let s = "0123456789abcdef0123456789abcdef";
        headers.insert(COOKIE, format!("a=b; {COOKIE_NAME}={s}").parse().unwrap());
        assert_eq!(session(&headers).as_deref(), Some(s));
        headers.insert(COOKIE, format!("{COOKIE_NAME}=short").parse().unwrap());
        assert_eq!(session(&headers), None);
    }
}
