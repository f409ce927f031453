//! Tail latency of single decisions, against the target "p99 <= 5 us at
//! 1,000 rules". Plain main, no criterion: each decision is timed on its own
//! with `Instant`, so the figures include the timer's own cost (printed).
//!
//! Run: `cargo bench -p ward-policy --bench percentiles`

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{OwnedRequest, Rng};

const DECISIONS: usize = 200_000;
const WARMUP: usize = 20_000;
const TARGET_P99_NS: f64 = 5_000.0;

struct Percentiles {
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

fn percentiles(mut samples: Vec<u64>) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: samples[samples.len() - 1],
    }
}

/// Time `DECISIONS` decisions over requests drawn at random from `requests`.
fn measure(policy: &ward_policy::CompiledPolicy, requests: &[&OwnedRequest], seed: u64) -> Percentiles {
    let mut rng = Rng::new(seed);
    let order: Vec<usize> = (0..DECISIONS + WARMUP).map(|_| rng.below(requests.len())).collect();
    let mut samples = Vec::with_capacity(DECISIONS);
    for (k, &i) in order.iter().enumerate() {
        let request = requests[i].request();
        let start = Instant::now();
        black_box(policy.decide(black_box(&request)));
        let ns = start.elapsed().as_nanos() as u64;
        if k >= WARMUP {
            samples.push(ns);
        }
    }
    percentiles(samples)
}

fn timer_overhead() -> Percentiles {
    let mut samples = Vec::with_capacity(DECISIONS);
    for _ in 0..DECISIONS {
        let start = Instant::now();
        black_box(());
        samples.push(start.elapsed().as_nanos() as u64);
    }
    percentiles(samples)
}

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("ward-policy decision latency: {DECISIONS} timed decisions per row after {WARMUP} warm-up, {cores} cores");
    let t = timer_overhead();
    println!(
        "timer overhead (empty timed section): p50 {} ns, p99 {} ns\n",
        t.p50, t.p99
    );
    println!(
        "{:>7} {:<10} {:>9} {:>9} {:>9} {:>9}",
        "rules", "workload", "p50 ns", "p99 ns", "p99.9 ns", "max ns"
    );

    let mut p99_at_1000 = None;
    for n in [10usize, 1_000, 10_000] {
        let policy = common::policy(n);
        let hits = common::hits(n, 4096, 11);
        let misses = common::misses(4096, 12);
        let last = common::last_rule(n, 4096, 13);
        common::check(&policy, &hits, &misses, &last);

        // The mix: 60% hits, 20% misses, 20% walks to the last rule.
        let mut mix: Vec<&OwnedRequest> = Vec::new();
        mix.extend(hits.iter().take(3 * 1024));
        mix.extend(misses.iter().take(1024));
        mix.extend(last.iter().take(1024));

        let rows: [(&str, Vec<&OwnedRequest>); 4] = [
            ("hit", hits.iter().collect()),
            ("miss", misses.iter().collect()),
            ("last_rule", last.iter().collect()),
            ("mixed", mix),
        ];
        for (name, requests) in rows {
            let p = measure(&policy, &requests, n as u64);
            println!("{n:>7} {name:<10} {:>9} {:>9} {:>9} {:>9}", p.p50, p.p99, p.p999, p.max);
            if n == 1_000 && name == "mixed" {
                p99_at_1000 = Some(p.p99);
            }
        }
    }
    if let Some(p99) = p99_at_1000 {
        println!(
            "\ntarget: p99 <= 5 us at 1,000 rules; measured p99 (mixed) {p99} ns = {:.3} of the target ({:.0}x headroom)",
            p99 as f64 / TARGET_P99_NS,
            TARGET_P99_NS / p99.max(1) as f64
        );
    }
}
