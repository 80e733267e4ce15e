//! `#[srpc::service]` at compile time: good trait shapes compile, bad ones fail with an
//! error that says what to write (the `.stderr` files next to each case).

#[test]
fn service_trait_shapes() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/macros/pass/*.rs");
    cases.compile_fail("tests/macros/fail/*.rs");
}
