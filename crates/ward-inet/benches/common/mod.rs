//! Synthetic lists, policies and requests shared by the benchmarks. Nothing
//! is downloaded: names are generated from a fixed seed.

#![allow(dead_code, clippy::unwrap_used)]

use ward_inet::*;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TLDS: &[&str] = &["com", "net", "org", "io", "de", "ru", "info", "xyz", "co.uk", "com.br"];
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn label(rng: &mut Rng, min: usize, max: usize) -> String {
    let len = min + rng.below(max - min + 1);
    (0..len).map(|_| ALPHABET[rng.below(26)] as char).collect()
}

/// Base-36 digits of `i`: makes every generated name distinct.
fn tag(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(ALPHABET[i % 36]);
        i /= 36;
        if i == 0 {
            break;
        }
    }
    String::from_utf8(s).unwrap()
}

/// The i-th name of a list seeded with `seed`: 2 to 4 labels plus a public
/// suffix, about 22 characters on average, like real block lists.
pub fn domain(seed: u64, i: usize) -> String {
    let mut rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut labels = Vec::new();
    for _ in 0..rng.below(3) {
        labels.push(label(&mut rng, 2, 8));
    }
    labels.push(format!("{}{}", label(&mut rng, 3, 9), tag(i)));
    labels.push(TLDS[rng.below(TLDS.len())].to_string());
    labels.join(".")
}

/// A hosts file of `n` names (`0.0.0.0 name`).
pub fn hosts_text(seed: u64, n: usize) -> Vec<u8> {
    let mut out = String::with_capacity(n * 32);
    out.push_str("# synthetic hosts list\n127.0.0.1 localhost\n");
    for i in 0..n {
        out.push_str("0.0.0.0 ");
        out.push_str(&domain(seed, i));
        out.push('\n');
    }
    out.into_bytes()
}

/// A plain list of `n` entries; every tenth is a wildcard (`*.name`).
pub fn plain_text(seed: u64, n: usize) -> Vec<u8> {
    let mut out = String::with_capacity(n * 26);
    out.push_str("# synthetic plain list\n");
    for i in 0..n {
        if i % 10 == 0 {
            out.push_str("*.");
        }
        out.push_str(&domain(seed, i));
        out.push('\n');
    }
    out.into_bytes()
}

/// An adblock list of `n` rules (`||name^`).
pub fn adblock_text(seed: u64, n: usize) -> Vec<u8> {
    let mut out = String::with_capacity(n * 28);
    out.push_str("[Adblock Plus 2.0]\n! synthetic\n");
    for i in 0..n {
        out.push_str("||");
        out.push_str(&domain(seed, i));
        out.push_str("^\n");
    }
    out.into_bytes()
}

pub const BLOCK_SEED: u64 = 1;
const SMALL_SEED: u64 = 2;
pub const MISS_SEED: u64 = 99;

fn rule(id: &str, priority: u32, action: InternetAction, lists: &[&str]) -> InternetRule {
    InternetRule {
        id: id.into(),
        priority,
        action,
        global_allow: false,
        users: vec![],
        groups: vec![],
        lists: lists.iter().map(|s| s.to_string()).collect(),
        inspect: false,
        valid_from: None,
        valid_until: None,
        enabled: true,
    }
}

/// A tenant's policy: a block list of `n` entries (plain, one in ten a
/// wildcard) and a realistic handful of other rules and small lists:
/// - global allow-list: group `execs` (no lists), and a `trusted` list of 100 names;
/// - block stage: the big list (everyone), a warn rule on `gambling` (1,000
///   names), a block rule on `social` (1,000 names) for group `interns`;
/// - allow stage: `work` (1,000 names) for group `staff`, a monitor rule on `social`.
pub fn policy(n: usize) -> CompiledInternetPolicy {
    let big = parse_list(&plain_text(BLOCK_SEED, n), Some(ListFormat::Plain));
    assert_eq!(big.report.invalid, 0);
    let small = |seed: u64, count: usize| {
        let names: Vec<String> = (0..count).map(|i| domain(seed, i)).collect();
        DomainList::from_entries(names.iter().map(String::as_str)).unwrap()
    };
    let lists = vec![
        NamedDomainList {
            id: "blocklist".into(),
            domains: big.list,
        },
        NamedDomainList {
            id: "trusted".into(),
            domains: small(SMALL_SEED, 100),
        },
        NamedDomainList {
            id: "gambling".into(),
            domains: small(SMALL_SEED + 1, 1000),
        },
        NamedDomainList {
            id: "social".into(),
            domains: small(SMALL_SEED + 2, 1000),
        },
        NamedDomainList {
            id: "work".into(),
            domains: small(SMALL_SEED + 3, 1000),
        },
    ];
    let mut execs = rule("execs", 1, InternetAction::Allow, &[]);
    execs.global_allow = true;
    execs.groups = vec!["execs".into()];
    let mut trusted = rule("trusted", 2, InternetAction::Allow, &["trusted"]);
    trusted.global_allow = true;
    let mut interns = rule("interns-social", 20, InternetAction::Block, &["social"]);
    interns.groups = vec!["interns".into()];
    let mut work = rule("work", 10, InternetAction::Allow, &["work"]);
    work.groups = vec!["staff".into()];
    let rules = vec![
        execs,
        trusted,
        rule("blocklist", 10, InternetAction::Block, &["blocklist"]),
        rule("gambling", 15, InternetAction::Warn, &["gambling"]),
        interns,
        work,
        rule("watch-social", 20, InternetAction::Monitor, &["social"]),
    ];
    CompiledInternetPolicy::compile(InternetPolicyInput {
        default_action: InternetAction::Allow,
        rules,
        lists,
    })
}

/// Hosts for the workloads over a block list of `n` entries:
/// - `hit`: an exact entry of the block list;
/// - `miss`: a name in no list (same shape, other seed);
/// - `deep_hit`: eight labels below a wildcard entry;
/// - `deep_miss`: eight labels below a name in no list.
pub fn hosts(n: usize, count: usize, seed: u64) -> [Vec<Host>; 4] {
    let mut rng = Rng::new(seed);
    let parse = |s: String| Host::parse(&s).unwrap();
    let mut hit = Vec::new();
    let mut miss = Vec::new();
    let mut deep_hit = Vec::new();
    let mut deep_miss = Vec::new();
    for _ in 0..count {
        let mut i = rng.below(n);
        if i % 10 == 0 {
            i += 1;
        }
        hit.push(parse(domain(BLOCK_SEED, i % n)));
        miss.push(parse(domain(MISS_SEED, rng.below(1 << 30))));
        let w = rng.below(n) / 10 * 10;
        deep_hit.push(parse(format!("a1.b2.c3.d4.e5.f6.g7.h8.{}", domain(BLOCK_SEED, w))));
        deep_miss.push(parse(format!(
            "a1.b2.c3.d4.e5.f6.g7.h8.{}",
            domain(MISS_SEED, rng.below(1 << 30))
        )));
    }
    [hit, miss, deep_hit, deep_miss]
}

pub const WORKLOADS: [&str; 4] = ["hit", "miss", "deep_hit", "deep_miss"];

pub fn request(host: &Host) -> InternetRequest<'_> {
    InternetRequest {
        user_id: "alice",
        groups: &STAFF,
        host,
        port: 443,
        now: 1_800_000_000_000,
    }
}

/// The request's groups: the user is staff, so the `work` allow rule applies
/// to them, and every stage has candidates.
pub static STAFF: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| vec!["staff".into()]);

/// Check the workloads decide as intended before timing them.
pub fn check(policy: &CompiledInternetPolicy, sets: &[Vec<Host>; 4]) {
    for (name, hosts) in WORKLOADS.iter().zip(sets) {
        let want_block = name.ends_with("hit");
        for host in hosts {
            let d = policy.decide(&request(host));
            assert_eq!(d.action == InternetAction::Block, want_block, "{name} {host}: {d:?}");
        }
    }
}
