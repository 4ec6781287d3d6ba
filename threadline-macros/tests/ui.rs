//! Compile tests of `#[audited]`: what must compile, and what must fail with an error that
//! points at the offending tokens.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
