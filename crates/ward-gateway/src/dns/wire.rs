//! DNS messages in and out of the filter: reading a query, and the answers
//! the filter makes itself. Pure: no I/O, no clock; never panics, whatever
//! the bytes (a property test holds it to that).

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

/// The longest DNS message (its length travels in 16 bits).
pub(crate) const MAX_MESSAGE: usize = 65535;
/// The TTL of a block address.
pub(crate) const BLOCK_TTL: u32 = 60;
/// The longest `answer` text a record keeps.
const MAX_ANSWER_TEXT: usize = 1024;
/// The fixed header of every DNS message.
const HEADER_LEN: usize = 12;

/// What a body posted to `/dns-query` turned out to be.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A query the filter can decide.
    Query(Box<Question>),
    /// Not a query the filter serves, but its id is readable: answer it
    /// with this code (`FORMERR`, `NOTIMP`), the message given.
    Reply { reply: Vec<u8>, rcode: ResponseCode },
    /// Not even an id: HTTP 400.
    Unreadable,
}

/// One readable query.
#[derive(Debug)]
pub(crate) struct Question {
    /// The client's id; every answer carries it.
    pub(crate) id: u16,
    pub(crate) query: Query,
    pub(crate) recursion_desired: bool,
    /// The query as it came, for forwarding (the id is changed there).
    pub(crate) raw: Vec<u8>,
}

impl Question {
    /// The queried name as text, without the trailing dot (as in records).
    pub(crate) fn name_text(&self) -> String {
        let mut text = self.query.name().to_ascii();
        if text.len() > 1 && text.ends_with('.') {
            text.pop();
        }
        text
    }

    /// `A`, `AAAA`, `MX`, ...
    pub(crate) fn qtype_text(&self) -> String {
        self.query.query_type().to_string()
    }
}

/// Reads one DNS message posted by an agent. Anything but a well-formed
/// standard query with exactly one question is answered `FORMERR` (or
/// `NOTIMP` for another opcode) when its id can be read.
pub(crate) fn parse_query(bytes: &[u8]) -> Parsed {
    if bytes.len() < 2 || bytes.len() > MAX_MESSAGE {
        return Parsed::Unreadable;
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    if bytes.len() < HEADER_LEN {
        return reply(id, OpCode::Query, ResponseCode::FormErr, None);
    }
    let flags = bytes[2];
    let opcode = (flags >> 3) & 0x0f;
    if flags & 0x80 != 0 {
        // A response is not a query.
        return reply(id, OpCode::Query, ResponseCode::FormErr, None);
    }
    if opcode != 0 {
        return reply(id, OpCode::from_u8(opcode), ResponseCode::NotImp, None);
    }
    let message = match Message::from_vec(bytes) {
        Ok(message) => message,
        Err(_) => return reply(id, OpCode::Query, ResponseCode::FormErr, None),
    };
    let [query] = message.queries() else {
        return reply(id, OpCode::Query, ResponseCode::FormErr, None);
    };
    Parsed::Query(Box::new(Question {
        id,
        query: query.clone(),
        recursion_desired: message.recursion_desired(),
        raw: bytes.to_vec(),
    }))
}

fn reply(id: u16, op_code: OpCode, rcode: ResponseCode, question: Option<&Question>) -> Parsed {
    match answer(id, op_code, rcode, question, Vec::new()) {
        Some(reply) => Parsed::Reply { reply, rcode },
        None => Parsed::Unreadable,
    }
}

/// An answer to `question` made by the filter: `rcode` and these records.
/// `None` only if the message cannot be encoded (it always can: the
/// question came from a message that decoded).
pub(crate) fn answer(
    id: u16,
    op_code: OpCode,
    rcode: ResponseCode,
    question: Option<&Question>,
    records: Vec<Record>,
) -> Option<Vec<u8>> {
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Response)
        .set_op_code(op_code)
        .set_recursion_available(true)
        .set_response_code(rcode);
    if let Some(q) = question {
        message.set_recursion_desired(q.recursion_desired);
        message.add_query(q.query.clone());
    }
    message.add_answers(records);
    message.to_vec().ok()
}

/// An answer without records (`REFUSED`, `SERVFAIL`, `NXDOMAIN`, ...).
pub(crate) fn error_answer(question: &Question, rcode: ResponseCode) -> Option<Vec<u8>> {
    answer(question.id, OpCode::Query, rcode, Some(question), Vec::new())
}

/// How the tenant answers a blocked name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockMode {
    NxDomain,
    Address { v4: Ipv4Addr, v6: Ipv6Addr },
}

impl BlockMode {
    /// From the tenant's settings: `address` answers A and AAAA with the
    /// block addresses (`0.0.0.0` and `::` when unset or unreadable);
    /// anything else is `nxdomain`.
    pub(crate) fn from_settings(settings: &ward_api::DnsSettings) -> BlockMode {
        if settings.block_mode != "address" {
            return BlockMode::NxDomain;
        }
        BlockMode::Address {
            v4: settings
                .block_ipv4
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            v6: settings
                .block_ipv6
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(Ipv6Addr::UNSPECIFIED),
        }
    }
}

/// The answer to a blocked name, with its response code.
pub(crate) fn blocked_answer(question: &Question, mode: BlockMode) -> Option<(Vec<u8>, ResponseCode)> {
    let (rcode, records) = match mode {
        BlockMode::NxDomain => (ResponseCode::NXDomain, Vec::new()),
        BlockMode::Address { v4, v6 } => {
            let name = question.query.name().clone();
            let records = match question.query.query_type() {
                RecordType::A => vec![Record::from_rdata(name, BLOCK_TTL, RData::A(A(v4)))],
                RecordType::AAAA => vec![Record::from_rdata(name, BLOCK_TTL, RData::AAAA(AAAA(v6)))],
                _ => Vec::new(),
            };
            (ResponseCode::NoError, records)
        }
    };
    let bytes = answer(question.id, OpCode::Query, rcode, Some(question), records)?;
    Some((bytes, rcode))
}

/// A response code as records name it: `NOERROR`, `NXDOMAIN`, ...
pub(crate) fn rcode_text(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// What a record says the answer was: its records as text (`A 192.0.2.1,
/// A 192.0.2.2`), or the response code when it has none.
pub(crate) fn answer_text(bytes: &[u8]) -> String {
    let Ok(message) = Message::from_vec(bytes) else {
        return "unreadable".into();
    };
    if message.response_code() != ResponseCode::NoError || message.answers().is_empty() {
        return rcode_text(message.response_code());
    }
    let mut text = String::new();
    for record in message.answers() {
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(&format!("{} {}", record.record_type(), record.data()));
        if text.len() > MAX_ANSWER_TEXT {
            let mut cut = MAX_ANSWER_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
            break;
        }
    }
    text
}

/// Whether `response` answers `question` as sent upstream with `id`: a
/// response, the same id, and the same single question (names compared
/// without case). Anything else is ignored, as a spoof would be.
pub(crate) fn matches(response: &[u8], id: u16, question: &Query) -> Option<Message> {
    let message = Message::from_vec(response).ok()?;
    if message.id() != id || message.message_type() != MessageType::Response {
        return None;
    }
    match message.queries() {
        [q] if q.name() == question.name()
            && q.query_type() == question.query_type()
            && q.query_class() == question.query_class() =>
        {
            Some(message)
        }
        _ => None,
    }
}

/// A recursive query of our own for `name` (the internet proxy resolving a
/// destination through the upstream resolvers), ready for
/// [`super::upstream::forward`]. `None` for a name DNS cannot carry.
pub(crate) fn question_for(name: &str, rtype: RecordType) -> Option<Question> {
    let name = hickory_proto::rr::Name::from_ascii(name).ok()?;
    let mut message = Message::new();
    message
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, rtype));
    match parse_query(&message.to_vec().ok()?) {
        Parsed::Query(question) => Some(*question),
        _ => None,
    }
}

/// The response code of an answer and the A and AAAA addresses in it.
pub(crate) fn addresses(bytes: &[u8]) -> Option<(ResponseCode, Vec<std::net::IpAddr>)> {
    let message = Message::from_vec(bytes).ok()?;
    let ips = message
        .answers()
        .iter()
        .filter_map(|record| match record.data() {
            RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(std::net::IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    Some((message.response_code(), ips))
}

/// `bytes` with the id set to `id` (the first two bytes).
pub(crate) fn with_id(mut bytes: Vec<u8>, id: u16) -> Vec<u8> {
    if bytes.len() >= 2 {
        bytes[..2].copy_from_slice(&id.to_be_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use proptest::prelude::*;

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(0x1234).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    fn rcode_of(parsed: &Parsed) -> Option<ResponseCode> {
        match parsed {
            Parsed::Reply { reply, .. } => Some(Message::from_vec(reply).unwrap().response_code()),
            _ => None,
        }
    }

    #[test]
    fn reads_a_query() {
        let Parsed::Query(q) = parse_query(&query("Site-A.Test.", RecordType::AAAA)) else {
            panic!("not a query");
        };
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.qtype_text(), "AAAA");
        assert_eq!(q.name_text().to_ascii_lowercase(), "site-a.test");
    }

    #[test]
    fn refuses_what_is_not_one_standard_query() {
        assert!(matches!(parse_query(&[]), Parsed::Unreadable));
        assert!(matches!(parse_query(&[1]), Parsed::Unreadable));
        assert_eq!(rcode_of(&parse_query(&[1, 2, 3])), Some(ResponseCode::FormErr));
        let mut full = query("a.test.", RecordType::A);
        let cut = full[..full.len() - 3].to_vec();
        assert_eq!(rcode_of(&parse_query(&cut)), Some(ResponseCode::FormErr));
        // Two questions.
        let mut m = Message::new();
        m.add_query(Query::query(Name::from_ascii("a.test.").unwrap(), RecordType::A));
        m.add_query(Query::query(Name::from_ascii("b.test.").unwrap(), RecordType::A));
        assert_eq!(
            rcode_of(&parse_query(&m.to_vec().unwrap())),
            Some(ResponseCode::FormErr)
        );
        // No question.
        assert_eq!(
            rcode_of(&parse_query(&Message::new().to_vec().unwrap())),
            Some(ResponseCode::FormErr)
        );
        // A response.
        full[2] |= 0x80;
        assert_eq!(rcode_of(&parse_query(&full)), Some(ResponseCode::FormErr));
        // Another opcode (UPDATE).
        full[2] = (5 << 3) | 1;
        assert_eq!(rcode_of(&parse_query(&full)), Some(ResponseCode::NotImp));
    }

    #[test]
    fn block_answers() {
        let Parsed::Query(q) = parse_query(&query("ads.test.", RecordType::A)) else {
            panic!()
        };
        let (bytes, rcode) = blocked_answer(&q, BlockMode::NxDomain).unwrap();
        assert_eq!(rcode, ResponseCode::NXDomain);
        assert_eq!(answer_text(&bytes), "NXDOMAIN");
        let mode = BlockMode::Address {
            v4: "192.0.2.7".parse().unwrap(),
            v6: "2001:db8::7".parse().unwrap(),
        };
        let (bytes, _) = blocked_answer(&q, mode).unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.id(), 0x1234);
        assert_eq!(m.answers()[0].ttl(), BLOCK_TTL);
        assert_eq!(answer_text(&bytes), "A 192.0.2.7");
        let Parsed::Query(q) = parse_query(&query("ads.test.", RecordType::MX)) else {
            panic!()
        };
        let (bytes, rcode) = blocked_answer(&q, mode).unwrap();
        assert_eq!(
            (rcode, answer_text(&bytes).as_str()),
            (ResponseCode::NoError, "NOERROR")
        );
    }

    /// The filter's whole path over one body: read it, then every answer
    /// the filter can make for it.
    fn exercise(bytes: &[u8]) {
        if let Parsed::Query(q) = parse_query(bytes) {
            let _ = q.name_text();
            let _ = ward_inet::Host::parse(&q.name_text());
            let _ = blocked_answer(&q, BlockMode::NxDomain);
            let _ = blocked_answer(
                &q,
                BlockMode::Address {
                    v4: Ipv4Addr::UNSPECIFIED,
                    v6: Ipv6Addr::UNSPECIFIED,
                },
            );
            let _ = error_answer(&q, ResponseCode::ServFail);
            let _ = matches(bytes, q.id, &q.query);
        }
        let _ = answer_text(bytes);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            exercise(&bytes);
        }

        #[test]
        fn mutated_queries_never_panic(
            qtype in prop::sample::select(vec![RecordType::A, RecordType::AAAA, RecordType::MX, RecordType::TXT]),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut bytes = query("www.site-a.test.", qtype);
            for (at, value) in edits {
                let i = at % bytes.len();
                bytes[i] = value;
            }
            let keep = cut % (bytes.len() + 1);
            bytes.truncate(keep.max(bytes.len() / 2));
            exercise(&bytes);
        }
    }
}
