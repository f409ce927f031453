//! Decision latency with 10, 1,000 and 10,000 rules: requests that hit an
//! application's rule, that match no application, and that walk every
//! candidate rule to the last one. See BENCHMARKS.md for figures.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in [10usize, 1_000, 10_000] {
        let policy = common::policy(n);
        let hits = common::hits(n, 1024, 1);
        let misses = common::misses(1024, 2);
        let last = common::last_rule(n, 1024, 3);
        common::check(&policy, &hits, &misses, &last);
        for (name, requests) in [("hit", &hits), ("miss", &misses), ("last_rule", &last)] {
            group.bench_with_input(BenchmarkId::new(name, n), requests, |b, requests| {
                let mut k = 0usize;
                b.iter(|| {
                    k = (k + 1) & 1023;
                    black_box(policy.decide(black_box(&requests[k].request())))
                })
            });
        }
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for n in [1_000usize, 10_000] {
        let input = common::input(n);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || input.clone(),
                ward_policy::CompiledPolicy::compile,
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, decide, compile);
criterion_main!(benches);
