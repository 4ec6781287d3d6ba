//! Compile tests of `#[audited]` on axum handlers: what must compile, and what must fail with
//! an error that points at the offending tokens. They live here rather than in
//! threadline-macros so that the macro crate has no dev-dependency on its own dependents
//! (which would stop `cargo package`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
