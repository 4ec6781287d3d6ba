//! Compile tests of `#[audited]` on axum and actix-web handlers: what must compile, and what
//! must fail with an error that points at the offending tokens. They live in this unpublished
//! package, which depends on both web crates, so that the macro crate has no dev-dependency on
//! its own dependents (which would stop `cargo package`) and trybuild builds the dependencies
//! once for both frameworks.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
