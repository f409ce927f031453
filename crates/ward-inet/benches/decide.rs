//! Mean times (criterion): a decision with a block list of 1,000 and of
//! 1,000,000 entries loaded (hit, miss, deep subdomain), list parsing for
//! 1,000,000 lines in each format, and compiling a 1,000,000-entry list.
//!
//! Run: `cargo bench -p ward-inet --bench decide`

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ward_inet::*;

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in [1_000usize, 1_000_000] {
        let policy = common::policy(n);
        let sets = common::hosts(n, 4096, 7);
        common::check(&policy, &sets);
        for (name, hosts) in common::WORKLOADS.iter().zip(&sets) {
            let mut k = 0usize;
            group.bench_function(format!("{name}/{n}"), |b| {
                b.iter(|| {
                    k = (k + 1) % hosts.len();
                    black_box(policy.decide(black_box(&common::request(&hosts[k]))))
                })
            });
        }
    }
    group.finish();
}

fn parse(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut group = c.benchmark_group("parse");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(N as u64));
    let inputs = [
        ("hosts", common::hosts_text(1, N), ListFormat::Hosts),
        ("plain", common::plain_text(1, N), ListFormat::Plain),
        ("adblock", common::adblock_text(1, N), ListFormat::Adblock),
    ];
    for (name, text, format) in &inputs {
        group.bench_function(format!("{name}/1M"), |b| {
            b.iter(|| black_box(parse_list(black_box(text), Some(*format))))
        });
    }
    group.bench_function("detect+plain/1M", |b| {
        b.iter(|| black_box(parse_list(black_box(&inputs[1].1), None)))
    });
    let list = parse_list(&inputs[1].1, Some(ListFormat::Plain)).list;
    group.bench_function("build_set/1M", |b| {
        b.iter_batched(
            || (),
            |()| black_box(DomainSet::build(&[&list])),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, decide, parse);
criterion_main!(benches);
