//! Tail latency of single decisions with a 1,000,000-entry block list
//! loaded (and with 1,000 entries, to show the size does not enter), the
//! memory the lists take, and list parsing throughput. Plain main, no
//! criterion: each decision is timed on its own with `Instant`, so the
//! figures include the timer's own cost (printed).
//!
//! Run: `cargo bench -p ward-inet --bench percentiles`

mod common;

use std::hint::black_box;
use std::time::Instant;

use ward_inet::*;

const DECISIONS: usize = 200_000;
const WARMUP: usize = 20_000;

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

fn measure(policy: &CompiledInternetPolicy, hosts: &[&Host], seed: u64) -> Percentiles {
    let mut rng = common::Rng::new(seed);
    let order: Vec<usize> = (0..DECISIONS + WARMUP).map(|_| rng.below(hosts.len())).collect();
    let mut samples = Vec::with_capacity(DECISIONS);
    for (k, &i) in order.iter().enumerate() {
        let request = common::request(hosts[i]);
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

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn parsing_and_memory() {
    const N: usize = 1_000_000;
    println!("list parsing, {N} lines (best of 3):");
    for (name, text, format) in [
        ("hosts", common::hosts_text(1, N), ListFormat::Hosts),
        ("plain", common::plain_text(1, N), ListFormat::Plain),
        ("adblock", common::adblock_text(1, N), ListFormat::Adblock),
    ] {
        let mut best = f64::MAX;
        let mut parsed = None;
        for _ in 0..3 {
            let start = Instant::now();
            let p = parse_list(&text, Some(format));
            best = best.min(start.elapsed().as_secs_f64());
            parsed = Some(p);
        }
        let Some(parsed) = parsed else { return };
        println!(
            "  {name:<8} {:>7.1} MiB in {:>6.0} ms = {:>5.2} M lines/s; {} entries, list text {:.1} bytes/entry",
            mib(text.len()),
            best * 1e3,
            N as f64 / best / 1e6,
            parsed.list.len(),
            parsed.list.heap_bytes() as f64 / parsed.list.len() as f64,
        );
    }

    println!("\nmemory of a compiled set of {N} distinct names (plain list, one in ten a wildcard):");
    let text = common::plain_text(1, N);
    let list = parse_list(&text, Some(ListFormat::Plain)).list;
    drop(text);
    let name_bytes: usize = list.entries().map(|e| e.name.len()).sum();
    let start = Instant::now();
    let set = DomainSet::build(&[&list]);
    let build = start.elapsed();
    println!(
        "  average name {:.1} bytes; set heap {:.1} MiB = {:.1} bytes/name (arena + table + combinations); built in {:.0} ms",
        name_bytes as f64 / set.len() as f64,
        mib(set.heap_bytes()),
        set.heap_bytes() as f64 / set.len() as f64,
        build.as_secs_f64() * 1e3
    );
    println!(
        "  the list it was built from (canonical text, kept by the policy input): {:.1} MiB = {:.1} bytes/entry",
        mib(list.heap_bytes()),
        list.heap_bytes() as f64 / list.len() as f64
    );
    drop(set);

    let text = common::adblock_text(1, N);
    let list = parse_list(&text, Some(ListFormat::Adblock)).list;
    let set = DomainSet::build(&[&list]);
    println!(
        "  adblock list of {N} rules ({} entries, {} names): set {:.1} bytes/name",
        list.len(),
        set.len(),
        set.heap_bytes() as f64 / set.len() as f64
    );
}

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("ward-inet: {DECISIONS} timed decisions per row after {WARMUP} warm-up, {cores} cores");
    let t = timer_overhead();
    println!(
        "timer overhead (empty timed section): p50 {} ns, p99 {} ns\n",
        t.p50, t.p99
    );
    println!(
        "{:>9} {:<10} {:>9} {:>9} {:>9} {:>9}",
        "entries", "workload", "p50 ns", "p99 ns", "p99.9 ns", "max ns"
    );
    for n in [1_000usize, 1_000_000] {
        let policy = common::policy(n);
        let sets = common::hosts(n, 4096, 11);
        common::check(&policy, &sets);
        let mut mixed: Vec<&Host> = Vec::new();
        for set in &sets {
            mixed.extend(set.iter().take(1024));
        }
        let mut rows: Vec<(&str, Vec<&Host>)> = common::WORKLOADS
            .iter()
            .zip(&sets)
            .map(|(name, hosts)| (*name, hosts.iter().collect()))
            .collect();
        rows.push(("mixed", mixed));
        for (name, hosts) in rows {
            let p = measure(&policy, &hosts, n as u64);
            println!("{n:>9} {name:<10} {:>9} {:>9} {:>9} {:>9}", p.p50, p.p99, p.p999, p.max);
        }
    }
    println!();
    parsing_and_memory();
}
