//! Benchmark: parse and format a typical 400-byte Java provider URL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // Test code: a failure should panic.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use dubbo_url::Url;

const PROVIDER: &str = "dubbo://10.20.30.40:20880/com.acme.inventory.StockQueryService?\
anyhost=true&application=inventory-provider&deprecated=false&dubbo=2.0.2&dynamic=true&\
generic=false&group=warehouse-eu&interface=com.acme.inventory.StockQueryService&\
methods=queryStock,reserve,release,listWarehouses,ping&pid=48213&release=3.3.0&\
service-name-mapping=true&side=provider&timeout=3000&timestamp=1700000000000&version=2.1.0&\
weight=100&retries=2";

fn parse_format(c: &mut Criterion) {
    assert!((380..=460).contains(&PROVIDER.len()), "{}", PROVIDER.len());
    c.bench_function("parse decoded 400B provider url", |b| {
        b.iter(|| Url::parse(std::hint::black_box(PROVIDER)))
    });
    // The anchor: the `url` crate (WHATWG) parsing the same string, in the same run.
    c.bench_function("anchor: url crate parses the same 400B url", |b| {
        b.iter(|| url::Url::parse(std::hint::black_box(PROVIDER)))
    });
    let url = Url::parse(PROVIDER).expect("valid");
    // A URL keeps its full string once made: each iteration formats a fresh copy (made
    // outside the timing), so this is the first formatting, not the cached one.
    c.bench_function("format 400B provider url", |b| {
        b.iter_batched(
            || Url::parse(PROVIDER).expect("valid"),
            |fresh| fresh.to_full_string(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("full string of a URL formatted before (cached)", |b| {
        b.iter(|| std::hint::black_box(&url).as_full_str().len())
    });
    let encoded = url.to_encoded_string();
    c.bench_function("parse encoded 400B provider url", |b| {
        b.iter(|| Url::parse(std::hint::black_box(&encoded)))
    });
    c.bench_function("parse + format 400B provider url", |b| {
        b.iter(|| {
            Url::parse(std::hint::black_box(PROVIDER))
                .map(|u| u.to_full_string())
                .ok()
        })
    });
}

criterion_group!(benches, parse_format);

criterion_main!(benches);
