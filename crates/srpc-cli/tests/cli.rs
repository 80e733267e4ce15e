//! The `srpc` binary, run as a user runs it: arguments in, stdout, stderr and exit status out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::process::{Command, Output};

fn srpc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srpc"))
        .args(args)
        .output()
        .expect("run srpc")
}

/// Runs `srpc args…` and checks stdout (trimmed) and the exit status.
fn check(args: &[&str], stdout: &str, status: i32) {
    let out = srpc(args);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        stdout,
        "stdout of {args:?}"
    );
    assert_eq!(
        out.status.code(),
        Some(status),
        "status of {args:?}, stderr {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `srpc args…`, expects exit status 2 and a stderr message containing `needle`.
fn check_invalid(args: &[&str], needle: &str) {
    let out = srpc(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "status of {args:?}");
    assert!(out.stdout.is_empty(), "no stdout for {args:?}");
    assert!(
        stderr.contains(needle),
        "stderr of {args:?} should contain {needle:?}: {stderr}"
    );
}

#[test]
fn url_parse_prints_one_json_object() {
    check(
        &[
            "url",
            "parse",
            "dubbo://admin:pw@10.0.0.5:20880/com.acme.Echo?version=1.0&anyhost=true",
        ],
        r#"{"protocol":"dubbo","username":"admin","password":"pw","host":"10.0.0.5","port":20880,"path":"com.acme.Echo","params":{"anyhost":"true","version":"1.0"}}"#,
        0,
    );
    check(
        &[
            "url",
            "parse",
            "dubbo%3A%2F%2F%5B%3A%3A1%5D%3A1%2Fa.B%3Fk%3Dv",
        ],
        r#"{"protocol":"dubbo","username":null,"password":null,"host":"[::1]","port":1,"path":"a.B","params":{"k":"v"}}"#,
        0,
    );
}

#[test]
fn url_format_sorts_like_java() {
    check(
        &["url", "format", "dubbo://h:1/p?b=2&a=1&c="],
        "dubbo://h:1/p?a=1&b=2&c=",
        0,
    );
    check(
        &["url", "format", "dubbo%3A%2F%2Fh%3A1%2Fp%3Fz%3D1%26y%3D2"],
        "dubbo://h:1/p?y=2&z=1",
        0,
    );
}

#[test]
fn url_encode_and_decode_are_java_compatible() {
    check(
        &["url", "encode", "dubbo://h:1/p?a=1 2~"],
        "dubbo%3A%2F%2Fh%3A1%2Fp%3Fa%3D1+2%7E",
        0,
    );
    check(&["url", "decode", "dubbo%3a%2F%2Fh+x"], "dubbo://h x", 0);
    check_invalid(&["url", "decode", "100%"], "invalid percent escape");
}

#[test]
fn url_key() {
    check(
        &[
            "url",
            "key",
            "dubbo://h:1/x?interface=a.B&group=g&version=1",
        ],
        "g/a.B:1",
        0,
    );
    check(&["url", "key", "dubbo://h:1/a.B"], "a.B", 0);
}

#[test]
fn url_match_answers_with_output_and_status() {
    check(
        &[
            "url",
            "match",
            "consumer://c/a.B?group=x,y",
            "dubbo://p:1/a.B?group=y",
        ],
        "true",
        0,
    );
    check(
        &[
            "url",
            "match",
            "consumer://c/a.B",
            "dubbo://p:1/a.B?enabled=false",
        ],
        "false",
        1,
    );
}

#[test]
fn invalid_input_exits_2_naming_the_problem() {
    check_invalid(
        &["url", "parse", "dubbo://h:99999/x"],
        "invalid port \"99999\"",
    );
    check_invalid(&["url", "format", "dubbo://fe80::1/x"], "bare IPv6 host");
    check_invalid(&["url", "key", ""], "empty url");
    check_invalid(
        &["url", "match", "consumer://c/a.B", "://nope"],
        "url missing protocol",
    );
    check_invalid(&["url", "frobnicate"], "unrecognized subcommand");
}

/// `srpc registry serve` refuses, before listening, what could never work: an empty token
/// (also from the environment), a TTL no clock can add, a limit of zero.
#[test]
fn registry_serve_refuses_what_could_never_work() {
    let serve = ["registry", "serve", "--addr", "127.0.0.1:0"];
    let with = |extra: &[&'static str]| [&serve[..], extra].concat();
    check_invalid(&with(&["--token", ""]), "the token is empty");
    check_invalid(&with(&["--read-token", " "]), "the read token is empty");
    check_invalid(
        &with(&["--ttl", "300000000000y"]),
        "above the most this registry grants",
    );
    check_invalid(&with(&["--max-instances", "0"]), "limit max-instances is 0");
    check_invalid(
        &with(&["--header-timeout", "0s"]),
        "limit header-timeout is 0",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_srpc"))
        .args(serve)
        .env("SRPC_REGISTRY_TOKEN", "")
        .output()
        .expect("run srpc");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SRPC_REGISTRY_TOKEN"));
}
