//! Normalisation and the list parsers never panic, whatever the input, and
//! what they produce is stable: a normalised name normalises to itself, and
//! a parsed list reads back from its canonical text unchanged.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use ward_inet::*;

/// Strings close to host names: ASCII letters in both cases, digits, dots,
/// hyphens, punycode prefixes, Unicode letters, lookalikes, full-width forms
/// and the dots UTS-46 maps, ignorable characters.
fn hostish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9]{1,8}",
        Just(".".to_string()),
        Just("-".to_string()),
        Just("_".to_string()),
        Just("xn--".to_string()),
        Just("XN--".to_string()),
        Just("xn--bcher-kva".to_string()),
        Just("xn--zz".to_string()),
        "[äöüßаеорсхÄ中文ｅｘ]{1,3}",
        Just("\u{3002}".to_string()),
        Just("\u{FF0E}".to_string()),
        Just("\u{00AD}".to_string()),
        Just("\u{200D}".to_string()),
        Just("0x".to_string()),
        "[0-9]{1,4}",
        Just("[".to_string()),
        Just("]".to_string()),
        Just(":".to_string()),
        Just("*".to_string()),
        Just("%".to_string()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

fn check_host(input: &str) {
    match Host::parse(input) {
        Ok(Host::Name(name)) => {
            let s = name.as_str();
            assert!(!s.is_empty() && s.len() <= 253, "{input:?} -> {s:?}");
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)));
            assert!(s.split('.').all(|l| !l.is_empty() && l.len() <= 63));
            assert_eq!(
                Host::parse(s),
                Ok(Host::Name(name.clone())),
                "not idempotent: {input:?}"
            );
            assert_eq!(Host::parse(&format!("{s}.")), Ok(Host::Name(name.clone())));
            assert_eq!(Host::parse(&s.to_ascii_uppercase()), Ok(Host::Name(name.clone())));
        }
        Ok(Host::Ip(ip)) => {
            assert_eq!(ip, ip.to_canonical());
            assert_eq!(Host::parse(&ip.to_string()), Ok(Host::Ip(ip)), "{input:?}");
        }
        Err(_) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn normalisation_is_idempotent_on_hostish_input(input in hostish()) {
        check_host(&input);
    }

    #[test]
    fn normalisation_never_panics(input in any::<String>()) {
        check_host(&input);
    }

    #[test]
    fn ascii_names_ignore_case(input in "[a-zA-Z0-9.-]{1,30}") {
        prop_assert_eq!(Host::parse(&input), Host::parse(&input.to_ascii_lowercase()));
    }
}

fn check_parse(bytes: &[u8], format: Option<ListFormat>) {
    let parsed = parse_list(bytes, format);
    let r = &parsed.report;
    assert_eq!(r.comments + r.accepted + r.ignored + r.invalid, r.lines);
    assert!(r.first_invalid.len() <= 10 && r.first_invalid.len() <= r.invalid);
    assert!(r.first_ignored.len() <= 10 && r.first_ignored.len() <= r.ignored);
    assert!(r.first_invalid.windows(2).all(|w| w[0].line < w[1].line));
    assert!(r.first_invalid.iter().all(|i| i.line >= 1 && i.line <= r.lines));
    assert_eq!(r.entries, parsed.list.len());
    if let Some(f) = format {
        assert_eq!(r.format, f);
    }
    // Everything accepted is a valid entry: the canonical text reads back.
    assert_eq!(DomainList::from_text(parsed.list.as_text()).unwrap(), parsed.list);
    for entry in parsed.list.entries() {
        assert_eq!(DomainName::parse(entry.name).unwrap().as_str(), entry.name);
    }
}

/// Lines made of the tokens the three formats care about.
fn listish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("0.0.0.0 ".to_string()),
        Just("127.0.0.1\t".to_string()),
        Just("::1 ".to_string()),
        Just("localhost".to_string()),
        Just("||".to_string()),
        Just("^".to_string()),
        Just("$important".to_string()),
        Just("$third-party".to_string()),
        Just("##".to_string()),
        Just("@@".to_string()),
        Just("*.".to_string()),
        Just("!".to_string()),
        Just("#".to_string()),
        Just(" ".to_string()),
        Just("/".to_string()),
        Just("\r".to_string()),
        Just("\n".to_string()),
        Just("\n".to_string()),
        hostish(),
        "[a-z]{1,6}\\.[a-z]{2,3}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|v| v.concat().into_bytes())
}

fn format() -> impl Strategy<Value = Option<ListFormat>> {
    prop::option::of(prop::sample::select(vec![
        ListFormat::Hosts,
        ListFormat::Adblock,
        ListFormat::Plain,
    ]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn parsers_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300), format in format()) {
        check_parse(&bytes, format);
    }

    #[test]
    fn parsers_never_panic_on_list_like_text(bytes in listish(), format in format()) {
        check_parse(&bytes, format);
    }
}

#[test]
fn huge_lines_are_refused_without_work() {
    let mut input = vec![b'a'; 1 << 20];
    input.extend_from_slice(b"\nok.example\n");
    let parsed = parse_list(&input, Some(ListFormat::Plain));
    assert_eq!((parsed.report.invalid, parsed.report.accepted), (1, 1));
}
