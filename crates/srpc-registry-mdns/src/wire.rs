//! mDNS messages (RFC 6762) on `simple-dns`: the records srpc publishes for one instance,
//! queries, and reading any datagram into owned records. Names are compared
//! case-insensitively by their lower-cased presentation form ([`key`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::{A, AAAA, PTR, RData, SRV, TXT};
use simple_dns::{
    CLASS, CharacterString, Label, Name, Packet, PacketFlag, QCLASS, QTYPE, Question,
    ResourceRecord, TYPE,
};

/// The mDNS group and port (RFC 6762 §3).
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// The mDNS port.
pub const PORT: u16 = 5353;
/// Records naming a host (SRV, A, AAAA): RFC 6762 §10 recommends 120 s.
pub const HOST_TTL: u32 = 120;
/// Other records (PTR, TXT): 75 minutes.
pub const OTHER_TTL: u32 = 4500;
/// srpc keeps each message it sends under this size (an Ethernet frame); an instance whose
/// records are larger goes alone in one message.
pub const MAX_MESSAGE: usize = 1400;
/// The DNS-SD meta-query name (RFC 6763 §9).
pub const SERVICES: &str = "_services._dns-sd._udp.local";

/// The lower-cased presentation form of a name, without the trailing dot: how names are
/// compared.
pub fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// One instance srpc publishes: everything its PTR, SRV, TXT and address records say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The instance label (one DNS label, no dots).
    pub label: String,
    /// `<type>.local`, e.g. `_srpc._tcp.local`.
    pub service: String,
    /// `<host label>.local`: the SRV target.
    pub host: String,
    /// What the host's A or AAAA record says.
    pub address: IpAddr,
    /// The SRV port.
    pub port: u16,
    /// The TXT strings, `key=value` each.
    pub txt: Vec<(String, String)>,
}

impl Published {
    /// `<label>.<type>.local`, as a [`key`].
    pub fn fullname_key(&self) -> String {
        key(&format!("{}.{}", self.label, self.service))
    }

    fn fullname(&self) -> Name<'_> {
        let mut labels = vec![Label::new_unchecked(self.label.as_bytes())];
        labels.extend(
            self.service
                .split('.')
                .map(|l| Label::new_unchecked(l.as_bytes())),
        );
        Name::new_with_labels(&labels)
    }

    /// The four records; TTLs scaled to 0 for a goodbye.
    fn records(&self, goodbye: bool) -> Vec<ResourceRecord<'_>> {
        let ttl = |t: u32| if goodbye { 0 } else { t };
        let mut txt = TXT::new();
        for (k, v) in &self.txt {
            // Lengths were checked when the instance was made (record::txt_properties).
            let string = format!("{k}={v}");
            if let Ok(s) = CharacterString::new(string.as_bytes()) {
                txt.add_char_string(s.into_owned());
            }
        }
        let host = name_of(&self.host);
        let address = match self.address {
            IpAddr::V4(a) => RData::A(A::from(a)),
            IpAddr::V6(a) => RData::AAAA(AAAA::from(a)),
        };
        vec![
            ResourceRecord::new(
                name_of(&self.service),
                CLASS::IN,
                ttl(OTHER_TTL),
                RData::PTR(PTR(self.fullname())),
            ),
            ResourceRecord::new(
                self.fullname(),
                CLASS::IN,
                ttl(HOST_TTL),
                RData::SRV(SRV {
                    priority: 0,
                    weight: 0,
                    port: self.port,
                    target: host.clone(),
                }),
            )
            .with_cache_flush(true),
            ResourceRecord::new(self.fullname(), CLASS::IN, ttl(OTHER_TTL), RData::TXT(txt))
                .with_cache_flush(true),
            ResourceRecord::new(host, CLASS::IN, ttl(HOST_TTL), address).with_cache_flush(true),
        ]
    }
}

fn name_of(text: &str) -> Name<'_> {
    let labels: Vec<Label<'_>> = text
        .trim_end_matches('.')
        .split('.')
        .map(|l| Label::new_unchecked(l.as_bytes()))
        .collect();
    Name::new_with_labels(&labels)
}

/// What a response carries for `instances`: announcements (or goodbyes), split into messages
/// under [`MAX_MESSAGE`] bytes. `reply_to` makes them answers to a legacy unicast query (its ID
/// and question echoed, RFC 6762 §6.7).
pub fn responses(
    instances: &[&Published],
    services_meta: &[&str],
    goodbye: bool,
    reply_to: Option<(u16, &QuestionOf)>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut packet = new_response(reply_to);
    let mut size = 0;
    let push = |packet: &mut Packet<'_>, out: &mut Vec<Vec<u8>>| {
        if !packet.answers.is_empty() {
            if let Ok(bytes) = packet.build_bytes_vec_compressed() {
                out.push(bytes);
            }
        }
    };
    for service in services_meta {
        packet.answers.push(ResourceRecord::new(
            name_of(SERVICES),
            CLASS::IN,
            if goodbye { 0 } else { OTHER_TTL },
            RData::PTR(PTR(name_of(service))),
        ));
        size += 64;
    }
    for instance in instances {
        let records = instance.records(goodbye);
        let alone = {
            let mut p = Packet::new_reply(0);
            p.answers.extend(records.iter().cloned());
            p.build_bytes_vec_compressed()
                .map_or(MAX_MESSAGE, |b| b.len())
        };
        if size > 0 && size + alone > MAX_MESSAGE {
            push(&mut packet, &mut out);
            packet = new_response(reply_to);
            size = 0;
        }
        packet.answers.extend(records);
        size += alone;
    }
    push(&mut packet, &mut out);
    out
}

fn new_response<'a>(reply_to: Option<(u16, &'a QuestionOf)>) -> Packet<'a> {
    let mut packet = Packet::new_reply(reply_to.map_or(0, |(id, _)| id));
    packet.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if let Some((_, q)) = reply_to {
        packet.questions.push(Question::new(
            name_of(&q.name),
            QTYPE::try_from(q.qtype).unwrap_or(QTYPE::ANY),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
    }
    packet
}

/// A name's length on the wire, uncompressed: a length byte per label, and the root.
fn wire_len(name: &str) -> usize {
    name.trim_end_matches('.').len() + 2
}

/// Many questions in as few queries as fit under [`MAX_MESSAGE`] bytes each (RFC 6762 §5.3
/// lets a query carry several), instead of one packet per name.
pub fn queries(asks: &[(&str, u16)]) -> Vec<Vec<u8>> {
    const HEADER: usize = 12;
    let mut out = Vec::new();
    let mut start = 0;
    while start < asks.len() {
        let mut size = HEADER;
        let mut end = start;
        while end < asks.len() {
            let question = wire_len(asks[end].0) + 4;
            if end > start && size + question > MAX_MESSAGE {
                break;
            }
            size += question;
            end += 1;
        }
        let mut packet = Packet::new_query(0);
        for (name, qtype) in &asks[start..end] {
            if let Ok(qtype) = QTYPE::try_from(*qtype) {
                packet.questions.push(Question::new(
                    name_of(name),
                    qtype,
                    QCLASS::CLASS(CLASS::IN),
                    false,
                ));
            }
        }
        if let Ok(bytes) = packet.build_bytes_vec_compressed() {
            out.push(bytes);
        }
        start = end;
    }
    out
}

/// A query for `name` (PTR for a service type, ANY for an instance or host), with the PTR
/// records already known listed for known-answer suppression (RFC 6762 §7.1), as many as
/// fit under [`MAX_MESSAGE`] bytes.
pub fn query(name: &str, qtype: u16, known: &[(&str, &str, u32)]) -> Option<Vec<u8>> {
    let mut packet = Packet::new_query(0);
    packet.questions.push(Question::new(
        name_of(name),
        QTYPE::try_from(qtype).ok()?,
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    // Header, question, then per answer: a pointer to the service name, type, class, TTL,
    // length, and the target written out.
    let mut size = 12 + wire_len(name) + 4;
    for (service, target, ttl) in known {
        size += 2 + 10 + wire_len(target);
        if size > MAX_MESSAGE {
            break;
        }
        packet.answers.push(ResourceRecord::new(
            name_of(service),
            CLASS::IN,
            *ttl,
            RData::PTR(PTR(name_of(target))),
        ));
    }
    packet.build_bytes_vec_compressed().ok()
}

/// The type number of PTR.
pub const T_PTR: u16 = 12;
/// The type number of ANY.
pub const T_ANY: u16 = 255;
/// The type number of SRV.
pub const T_SRV: u16 = 33;
/// The type number of TXT.
pub const T_TXT: u16 = 16;
/// The type number of A.
pub const T_A: u16 = 1;
/// The type number of AAAA.
pub const T_AAAA: u16 = 28;

/// One question of a received query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionOf {
    /// The name asked about, as a [`key`].
    pub name: String,
    /// Its type number.
    pub qtype: u16,
}

/// What a record says, for the record kinds DNS-SD uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A pointer to an instance: its full name as a [`key`], and its first label as sent.
    Ptr {
        /// The instance's full name as a [`key`].
        target: String,
        /// The instance label, unescaped.
        instance: String,
    },
    /// Port and target host (a [`key`]).
    Srv {
        /// The port.
        port: u16,
        /// The host, as a [`key`].
        target: String,
    },
    /// TXT strings as (key, value); a bare key has no value.
    Txt(Vec<(String, Option<String>)>),
    /// An address record.
    Addr(IpAddr),
}

/// One received record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its owner name, as a [`key`].
    pub name: String,
    /// What it says.
    pub data: Data,
    /// Its TTL in seconds (0: goodbye).
    pub ttl: u32,
    /// The cache-flush bit (RFC 6762 §10.2).
    pub flush: bool,
}

/// A received message, reduced to what DNS-SD needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The message ID (non-zero only in legacy unicast queries).
    pub id: u16,
    /// Whether it is a response.
    pub response: bool,
    /// The questions of a query.
    pub questions: Vec<QuestionOf>,
    /// The records of a response (answers and additional), or a query's known answers.
    pub records: Vec<Record>,
}

/// Reads a datagram. Records of other kinds are skipped; a datagram that is not DNS is an
/// error (the caller logs and skips it).
pub fn parse(datagram: &[u8]) -> Result<Message, simple_dns::SimpleDnsError> {
    let packet = Packet::parse(datagram)?;
    let response = packet.has_flags(PacketFlag::RESPONSE);
    let questions = packet
        .questions
        .iter()
        .map(|q| QuestionOf {
            name: key(&q.qname.to_string()),
            qtype: u16::from(q.qtype),
        })
        .collect();
    let mut records = Vec::new();
    for rr in packet.answers.iter().chain(&packet.additional_records) {
        let data = match &rr.rdata {
            RData::PTR(PTR(target)) => Data::Ptr {
                target: key(&target.to_string()),
                instance: target
                    .get_labels()
                    .first()
                    .map(|l| String::from_utf8_lossy(l.as_ref()).into_owned())
                    .unwrap_or_default(),
            },
            RData::SRV(srv) => Data::Srv {
                port: srv.port,
                target: key(&srv.target.to_string()),
            },
            RData::TXT(txt) => Data::Txt(
                txt.iter_raw()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(k).into_owned(),
                            v.map(|v| String::from_utf8_lossy(v).into_owned()),
                        )
                    })
                    .collect(),
            ),
            RData::A(a) => Data::Addr(IpAddr::V4(Ipv4Addr::from(a.address))),
            RData::AAAA(a) => Data::Addr(IpAddr::V6(Ipv6Addr::from(a.address))),
            _ => continue,
        };
        if !matches!(rr.class, CLASS::IN) {
            continue;
        }
        records.push(Record {
            name: key(&rr.name.to_string()),
            data,
            ttl: rr.ttl,
            flush: rr.cache_flush,
        });
    }
    Ok(Message {
        id: packet.id(),
        response,
        questions,
        records,
    })
}

/// Whether a record type number is one a question of `qtype` asks for.
pub fn asks_for(qtype: u16, record_type: u16) -> bool {
    qtype == T_ANY || qtype == record_type
}

/// The type number of a TYPE (for tests and logs).
pub fn type_number(t: TYPE) -> u16 {
    u16::from(t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn sample() -> Published {
        Published {
            label: "Echo-127-0-0-1-20880-0123abcd".into(),
            service: "_srpc._tcp.local".into(),
            host: "srpc-127-0-0-1.local".into(),
            address: IpAddr::from([127, 0, 0, 1]),
            port: 20880,
            txt: vec![
                ("txtvers".into(), "1".into()),
                ("protocol".into(), "dubbo".into()),
                ("region".into(), "東京".into()),
                ("flag".into(), String::new()),
            ],
        }
    }

    #[test]
    fn an_announcement_reads_back() {
        let p = sample();
        let bytes = responses(&[&p], &[], false, None);
        assert_eq!(bytes.len(), 1);
        let m = parse(&bytes[0]).unwrap();
        assert!(m.response);
        assert_eq!(m.records.len(), 4);
        assert_eq!(
            m.records[0].data,
            Data::Ptr {
                target: p.fullname_key(),
                instance: p.label.clone()
            }
        );
        assert_eq!(m.records[0].name, "_srpc._tcp.local");
        assert!(!m.records[0].flush && m.records[1].flush);
        assert_eq!(
            m.records[1].data,
            Data::Srv {
                port: 20880,
                target: "srpc-127-0-0-1.local".into()
            }
        );
        let Data::Txt(txt) = &m.records[2].data else {
            panic!("{:?}", m.records[2]);
        };
        assert_eq!(txt[2], ("region".to_owned(), Some("東京".to_owned())));
        assert_eq!(txt[3], ("flag".to_owned(), Some(String::new())));
        assert_eq!(m.records[3].data, Data::Addr(p.address));
        assert_eq!(m.records[3].ttl, HOST_TTL);
    }

    #[test]
    fn goodbyes_have_ttl_zero() {
        let p = sample();
        let m = parse(&responses(&[&p], &[], true, None)[0]).unwrap();
        assert!(m.records.iter().all(|r| r.ttl == 0));
    }

    #[test]
    fn many_questions_share_messages_under_the_limit() {
        let names: Vec<String> = (0..1000)
            .map(|i| format!("ghost-{i}._srpc._tcp.local"))
            .collect();
        let asks: Vec<(&str, u16)> = names.iter().map(|n| (n.as_str(), T_ANY)).collect();
        let messages = queries(&asks);
        assert!(messages.len() < 40, "{} messages", messages.len());
        let mut asked = Vec::new();
        for m in &messages {
            assert!(m.len() <= MAX_MESSAGE, "{}", m.len());
            let parsed = parse(m).unwrap();
            assert!(!parsed.response);
            asked.extend(parsed.questions.into_iter().map(|q| q.name));
        }
        assert_eq!(asked, names);
    }

    #[test]
    fn many_instances_are_split_into_messages_under_the_limit() {
        let all: Vec<Published> = (0..200)
            .map(|i| Published {
                label: format!("Echo-{i}"),
                port: 20000 + i,
                ..sample()
            })
            .collect();
        let refs: Vec<&Published> = all.iter().collect();
        let messages = responses(&refs, &["_srpc._tcp.local"], false, None);
        assert!(messages.len() > 1);
        let mut ptrs = 0;
        for m in &messages {
            assert!(m.len() <= MAX_MESSAGE, "{} bytes", m.len());
            ptrs += parse(m)
                .unwrap()
                .records
                .iter()
                .filter(|r| matches!(r.data, Data::Ptr { .. }) && r.name == "_srpc._tcp.local")
                .count();
        }
        assert_eq!(ptrs, 200);
    }

    #[test]
    fn a_query_reads_back_with_its_known_answers() {
        let bytes = query(
            "_srpc._tcp.local",
            T_PTR,
            &[("_srpc._tcp.local", "x._srpc._tcp.local", 4000)],
        )
        .unwrap();
        let m = parse(&bytes).unwrap();
        assert!(!m.response);
        assert_eq!(
            m.questions,
            [QuestionOf {
                name: "_srpc._tcp.local".into(),
                qtype: T_PTR
            }]
        );
        assert_eq!(m.records.len(), 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"").is_err());
        assert!(parse(&[0xff; 11]).is_err());
        let mut truncated = responses(&[&sample()], &[], false, None).remove(0);
        truncated.truncate(truncated.len() - 7);
        assert!(parse(&truncated).is_err());
    }

    #[test]
    fn names_compare_case_insensitively() {
        assert_eq!(key("Foo._SRPC._tcp.local."), "foo._srpc._tcp.local");
    }
}
