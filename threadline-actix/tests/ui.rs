//! Compile tests of `#[audited]` on actix-web handlers: what must compile, and what must fail
//! with an error that points at the offending tokens. The axum side, with the full set of
//! rejected inputs, is in threadline-axum/tests/ui.rs.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
