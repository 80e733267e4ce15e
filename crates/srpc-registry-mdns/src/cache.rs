//! [`Cache`]: what a handle has heard on the link (RFC 6762 §10), keyed by instance, and the
//! URLs it makes. Pure state with explicit clocks, so every rule is unit-tested:
//!
//! - records are kept for their TTL; a goodbye (TTL 0) or a flushed record lingers one second
//!   (§10.1, §10.2), which is also what debounces removals: an instance announced again within
//!   that second never leaves;
//! - an instance is shown once its PTR, SRV, TXT and an address of its host are all known, and
//!   every later record about it is an update of that one entry (an upsert by instance name);
//! - records near the end of their life are asked for again (§5.2), missing ones at once;
//! - an instance the prober lost stays hidden until it answers a probe again.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use srpc_registry_kit::Url;
use tokio::time::Instant;
use tracing::warn;

use crate::record::url_of;
use crate::wire::{Data, Message, T_A, T_ANY, T_PTR, key};

/// How long a goodbye or a flushed record lingers (RFC 6762 §10.1).
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// The least time between two questions about one name.
const ASK_AGAIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Life {
    received: Instant,
    expires: Instant,
    /// Whether the refresh query at 80 % of its life was sent.
    refreshed: bool,
}

impl Life {
    fn new(now: Instant, ttl: u32) -> Life {
        let expires = if ttl == 0 {
            now + LINGER
        } else {
            now + Duration::from_secs(u64::from(ttl))
        };
        Life {
            received: now,
            expires,
            refreshed: false,
        }
    }

    fn refresh_at(&self) -> Instant {
        self.received + (self.expires - self.received).mul_f32(0.8)
    }
}

/// TXT strings as (key, value).
type Txt = Vec<(String, Option<String>)>;

/// The most instances (and hosts) a cache holds: what a hostile or broken peer on the link
/// can make a handle keep is bounded. Records of new names beyond it are dropped, with one
/// `warn`.
pub(crate) const MAX_NAMES: usize = 100_000;

#[derive(Debug, Default)]
struct Entry {
    /// The instance label as sent.
    label: String,
    ptr: Option<Life>,
    srv: Option<(u16, String, Life)>,
    txt: Option<(Txt, Life)>,
    hidden: bool,
    /// The URL made from the records, until one of them changes (`None`: to be made).
    made: Option<std::result::Result<Url, String>>,
}

/// What a handle heard about one service type.
#[derive(Debug)]
pub(crate) struct Cache {
    /// `<type>.local` as a key.
    service: String,
    /// `.<type>.local`: the suffix of instance names.
    suffix: String,
    instances: HashMap<String, Entry>,
    hosts: HashMap<String, Vec<(IpAddr, Life)>>,
    asked: HashMap<String, Instant>,
    /// The most names held ([`MAX_NAMES`]).
    limit: usize,
    /// Whether the warning that the limit was reached was given.
    full_warned: bool,
}

/// A question the cache wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ask {
    /// The name, as a key.
    pub name: String,
    /// Its type number.
    pub qtype: u16,
}

impl Cache {
    /// An empty cache for `<type>.local`.
    pub(crate) fn new(service: &str) -> Cache {
        let service = key(service);
        Cache {
            suffix: format!(".{service}"),
            service,
            instances: HashMap::new(),
            hosts: HashMap::new(),
            asked: HashMap::new(),
            limit: MAX_NAMES,
            full_warned: false,
        }
    }

    /// Takes in the records of a response. Returns whether what the cache shows may have
    /// changed (a TTL refresh of records it already had is not a change).
    pub(crate) fn apply(&mut self, message: &Message, now: Instant) -> bool {
        let mut flushed: HashSet<&str> = HashSet::new();
        let mut changed = false;
        let mut hosts_changed: HashSet<&str> = HashSet::new();
        for record in &message.records {
            let life = Life::new(now, record.ttl);
            let instance_name = match &record.data {
                Data::Ptr { target, .. } if record.name == self.service => target,
                Data::Srv { .. } | Data::Txt(_) if record.name.ends_with(&self.suffix) => {
                    &record.name
                }
                Data::Addr(_) => &record.name,
                _ => continue,
            };
            if !instance_name.ends_with(&self.suffix) && !matches!(record.data, Data::Addr(_)) {
                continue;
            }
            let known = match record.data {
                Data::Addr(_) => self.hosts.contains_key(instance_name),
                _ => self.instances.contains_key(instance_name),
            };
            if !known && self.instances.len() + self.hosts.len() >= self.limit {
                if !self.full_warned {
                    self.full_warned = true;
                    warn!(
                        backend = crate::SCHEME,
                        limit = self.limit,
                        "mDNS cache full: records of new names are dropped until some expire"
                    );
                }
                continue;
            }
            match &record.data {
                Data::Ptr { target, instance } => {
                    let entry = self.instances.entry(target.clone()).or_default();
                    if entry.ptr.is_none() || entry.label != *instance {
                        entry.label.clone_from(instance);
                        entry.made = None;
                        changed = true;
                    }
                    entry.ptr = Some(life);
                }
                Data::Srv { port, target } => {
                    let entry = self.instances.entry(record.name.clone()).or_default();
                    if entry
                        .srv
                        .as_ref()
                        .is_none_or(|(p, t, _)| p != port || t != target)
                    {
                        entry.made = None;
                        changed = true;
                    }
                    entry.srv = Some((*port, target.clone(), life));
                }
                Data::Txt(pairs) => {
                    let entry = self.instances.entry(record.name.clone()).or_default();
                    if entry.txt.as_ref().is_none_or(|(t, _)| t != pairs) {
                        entry.made = None;
                        changed = true;
                    }
                    entry.txt = Some((pairs.clone(), life));
                }
                Data::Addr(address) => {
                    let addresses = self.hosts.entry(record.name.clone()).or_default();
                    if record.flush && record.ttl > 0 && flushed.insert(&record.name) {
                        // Cache flush: what this message says replaces what came before,
                        // except records received within the last second (§10.2).
                        for (_, old) in addresses.iter_mut() {
                            if now.saturating_duration_since(old.received) > LINGER {
                                old.expires = old.expires.min(now + LINGER);
                            }
                        }
                    }
                    let before = addresses.len();
                    addresses.retain(|(a, _)| a != address);
                    if addresses.len() == before {
                        hosts_changed.insert(&record.name);
                    }
                    addresses.push((*address, life));
                }
            }
        }
        if !hosts_changed.is_empty() {
            changed = true;
            self.remake_for_hosts(&hosts_changed);
        }
        changed
    }

    /// Instances whose SRV names one of `hosts` must make their URL again.
    fn remake_for_hosts(&mut self, hosts: &HashSet<&str>) {
        for entry in self.instances.values_mut() {
            if entry
                .srv
                .as_ref()
                .is_some_and(|(_, target, _)| hosts.contains(target.as_str()))
            {
                entry.made = None;
            }
        }
    }

    /// Drops what expired by `now`. Returns whether anything went.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let alive = |life: &Life| life.expires > now;
        for entry in self.instances.values_mut() {
            let mut gone = false;
            if entry.ptr.is_some_and(|l| !alive(&l)) {
                entry.ptr = None;
                gone = true;
            }
            if entry.srv.as_ref().is_some_and(|(_, _, l)| !alive(l)) {
                entry.srv = None;
                gone = true;
            }
            if entry.txt.as_ref().is_some_and(|(_, l)| !alive(l)) {
                entry.txt = None;
                gone = true;
            }
            if gone {
                entry.made = None;
                changed = true;
            }
        }
        self.instances
            .retain(|_, e| e.ptr.is_some() || e.srv.is_some() || e.txt.is_some());
        let mut hosts_changed: HashSet<String> = HashSet::new();
        for (host, addresses) in &mut self.hosts {
            let before = addresses.len();
            addresses.retain(|(_, l)| alive(l));
            if addresses.len() != before {
                hosts_changed.insert(host.clone());
            }
        }
        self.hosts.retain(|_, a| !a.is_empty());
        if !hosts_changed.is_empty() {
            changed = true;
            self.remake_for_hosts(&hosts_changed.iter().map(String::as_str).collect());
        }
        if self.instances.len() + self.hosts.len() < self.limit {
            self.full_warned = false;
        }
        self.asked
            .retain(|_, at| now.saturating_duration_since(*at) < ASK_AGAIN);
        changed
    }

    /// Forgets an instance at once (its own handle said goodbye).
    pub(crate) fn forget(&mut self, fullname: &str) {
        self.instances.remove(fullname);
    }

    /// Hides or shows again an instance (the prober's verdict). Returns whether it changed.
    pub(crate) fn set_hidden(&mut self, fullname: &str, hidden: bool) -> bool {
        match self.instances.get_mut(fullname) {
            Some(entry) if entry.hidden != hidden => {
                entry.hidden = hidden;
                true
            }
            _ => false,
        }
    }

    /// Every complete instance as a URL, keyed by instance name, hidden ones included when
    /// asked; instances that make no valid URL are reported in `bad`. A URL is made once and
    /// kept until a record of its instance (or an address of its host) changes.
    pub(crate) fn urls(
        &mut self,
        with_hidden: bool,
        bad: &mut Vec<(String, String)>,
    ) -> HashMap<String, Url> {
        let mut out = HashMap::new();
        for (name, entry) in &mut self.instances {
            if entry.hidden && !with_hidden {
                continue;
            }
            let (Some(_), Some((port, target, _)), Some((txt, _))) =
                (&entry.ptr, &entry.srv, &entry.txt)
            else {
                continue;
            };
            let Some(addresses) = self.hosts.get(target) else {
                continue;
            };
            let made = entry.made.get_or_insert_with(|| {
                let addresses: Vec<IpAddr> = addresses.iter().map(|(a, _)| *a).collect();
                url_of(&entry.label, &addresses, *port, txt).map_err(|e| e.to_string())
            });
            match made {
                Ok(url) => {
                    out.insert(name.clone(), url.clone());
                }
                Err(error) => bad.push((name.clone(), error.clone())),
            }
        }
        out
    }

    /// The questions to send now: records near the end of their life (one PTR question for
    /// the type covers them), and what incomplete instances lack. Each name at most once a
    /// second.
    pub(crate) fn wants(&mut self, now: Instant) -> Vec<Ask> {
        let mut asks = Vec::new();
        let mut refresh = false;
        for (name, entry) in &mut self.instances {
            let due = |l: &Life| !l.refreshed && l.refresh_at() <= now && l.expires > now;
            if let Some(l) = entry.ptr.as_mut().filter(|l| due(l)) {
                l.refreshed = true;
                refresh = true;
            }
            let mut ask_instance = false;
            if let Some((_, _, l)) = entry.srv.as_mut().filter(|(_, _, l)| due(l)) {
                l.refreshed = true;
                ask_instance = true;
            }
            if let Some((_, l)) = entry.txt.as_mut().filter(|(_, l)| due(l)) {
                l.refreshed = true;
                ask_instance = true;
            }
            if entry.ptr.is_some() && (entry.srv.is_none() || entry.txt.is_none()) {
                ask_instance = true;
            }
            if ask_instance {
                asks.push(Ask {
                    name: name.clone(),
                    qtype: T_ANY,
                });
            }
            if let Some((_, target, _)) = &entry.srv {
                if entry.ptr.is_some() && !self.hosts.contains_key(target) {
                    asks.push(Ask {
                        name: target.clone(),
                        qtype: T_A,
                    });
                }
            }
        }
        for (host, addresses) in &mut self.hosts {
            for (_, l) in addresses.iter_mut() {
                if !l.refreshed && l.refresh_at() <= now && l.expires > now {
                    l.refreshed = true;
                    asks.push(Ask {
                        name: host.clone(),
                        qtype: T_A,
                    });
                }
            }
        }
        if refresh {
            asks.push(Ask {
                name: self.service.clone(),
                qtype: T_PTR,
            });
        }
        asks.sort_by(|a, b| a.name.cmp(&b.name));
        asks.dedup();
        asks.retain(|ask| {
            !matches!(self.asked.get(&ask.name),
                Some(at) if now.saturating_duration_since(*at) < ASK_AGAIN)
        });
        for ask in &asks {
            self.asked.insert(ask.name.clone(), now);
        }
        asks
    }

    /// The PTR records known with more than half their TTL left: a query lists them so that
    /// responders do not repeat them (known-answer suppression, RFC 6762 §7.1).
    pub(crate) fn known_answers(&self, now: Instant) -> Vec<(String, u32)> {
        self.instances
            .iter()
            .filter_map(|(name, entry)| {
                let life = entry.ptr?;
                let total = life.expires.saturating_duration_since(life.received);
                let left = life.expires.saturating_duration_since(now);
                (left > total / 2).then(|| {
                    (
                        name.clone(),
                        u32::try_from(left.as_secs()).unwrap_or(u32::MAX),
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::wire::{Published, parse, responses};

    fn published(port: u16, region: &str) -> Published {
        Published {
            label: format!("Echo-{port}"),
            service: "_srpc._tcp.local".into(),
            host: "srpc-127-0-0-1.local".into(),
            address: IpAddr::from([127, 0, 0, 1]),
            port,
            txt: vec![
                ("txtvers".into(), "1".into()),
                ("protocol".into(), "dubbo".into()),
                ("path".into(), "com.acme.Echo".into()),
                ("region".into(), region.into()),
            ],
        }
    }

    fn heard(p: &Published, goodbye: bool) -> Message {
        parse(&responses(&[p], &[], goodbye, None)[0]).unwrap()
    }

    fn shown(cache: &mut Cache) -> Vec<String> {
        let mut v: Vec<String> = cache
            .urls(false, &mut Vec::new())
            .values()
            .map(Url::to_full_string)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_announcement_makes_a_url() {
        let mut cache = Cache::new("_srpc._tcp.local.");
        let now = Instant::now();
        assert!(cache.apply(&heard(&published(1, "a"), false), now));
        assert_eq!(
            shown(&mut cache),
            ["dubbo://127.0.0.1:1/com.acme.Echo?region=a"]
        );
    }

    #[test]
    fn a_new_txt_updates_the_same_instance() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let now = Instant::now();
        cache.apply(&heard(&published(1, "a"), false), now);
        cache.apply(&heard(&published(1, "b"), false), now);
        assert_eq!(
            shown(&mut cache),
            ["dubbo://127.0.0.1:1/com.acme.Echo?region=b"]
        );
    }

    #[test]
    fn a_goodbye_removes_after_a_second_unless_announced_again() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let t0 = Instant::now();
        let (a, b) = (published(1, "a"), published(2, "a"));
        cache.apply(&heard(&a, false), t0);
        cache.apply(&heard(&b, false), t0);
        cache.apply(&heard(&a, true), t0);
        cache.apply(&heard(&b, true), t0);
        // `a` comes back within the second: it never leaves.
        cache.apply(&heard(&a, false), t0 + Duration::from_millis(500));
        cache.expire(t0 + Duration::from_millis(900));
        assert_eq!(
            shown(&mut cache).len(),
            2,
            "a goodbye is not a removal at once"
        );
        assert!(cache.expire(t0 + LINGER + Duration::from_millis(1)));
        assert_eq!(
            shown(&mut cache),
            ["dubbo://127.0.0.1:1/com.acme.Echo?region=a"]
        );
    }

    #[test]
    fn records_expire_with_their_ttl() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let t0 = Instant::now();
        cache.apply(&heard(&published(1, "a"), false), t0);
        cache.expire(t0 + Duration::from_secs(119));
        assert_eq!(shown(&mut cache).len(), 1);
        // SRV and A live 120 s.
        cache.expire(t0 + Duration::from_secs(121));
        assert!(shown(&mut cache).is_empty());
    }

    #[test]
    fn refresh_is_asked_at_80_percent_and_missing_records_at_once() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let t0 = Instant::now();
        let mut m = heard(&published(1, "a"), false);
        m.records.retain(|r| matches!(r.data, Data::Ptr { .. }));
        cache.apply(&m, t0);
        let asks = cache.wants(t0);
        assert_eq!(
            asks,
            [Ask {
                name: "echo-1._srpc._tcp.local".into(),
                qtype: T_ANY
            }]
        );
        assert!(cache.wants(t0).is_empty(), "not twice within a second");
        cache.apply(&heard(&published(1, "a"), false), t0);
        assert!(cache.wants(t0 + Duration::from_secs(2)).is_empty());
        let asks = cache.wants(t0 + Duration::from_secs(97));
        assert!(asks.iter().any(|a| a.qtype == T_ANY), "{asks:?}");
        assert!(asks.iter().any(|a| a.qtype == T_A), "{asks:?}");
    }

    #[test]
    fn hidden_instances_are_not_shown() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let now = Instant::now();
        let p = published(1, "a");
        cache.apply(&heard(&p, false), now);
        assert!(cache.set_hidden(&p.fullname_key(), true));
        assert!(shown(&mut cache).is_empty());
        assert_eq!(cache.urls(true, &mut Vec::new()).len(), 1);
        assert!(cache.set_hidden(&p.fullname_key(), false));
        assert_eq!(shown(&mut cache).len(), 1);
    }

    #[test]
    fn a_ttl_refresh_is_not_a_change() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let t0 = Instant::now();
        let p = published(1, "a");
        assert!(cache.apply(&heard(&p, false), t0));
        assert!(!cache.apply(&heard(&p, false), t0 + Duration::from_secs(5)));
        assert!(cache.apply(
            &heard(&published(1, "b"), false),
            t0 + Duration::from_secs(6)
        ));
        // A new address for the host is a change, and the URL follows it.
        let mut moved = published(1, "b");
        moved.address = IpAddr::from([127, 0, 0, 2]);
        assert!(cache.apply(&heard(&moved, false), t0 + Duration::from_secs(8)));
        // The old address lingers a second after the flush; then only the new one is left.
        cache.expire(t0 + Duration::from_secs(10));
        assert_eq!(
            shown(&mut cache),
            ["dubbo://127.0.0.2:1/com.acme.Echo?region=b"]
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = Cache::new("_srpc._tcp.local");
        cache.limit = 7; // one host and six instances
        let now = Instant::now();
        for port in 1..=10 {
            cache.apply(&heard(&published(port, "a"), false), now);
        }
        assert_eq!(shown(&mut cache).len(), 6);
        assert!(cache.full_warned);
        // Known names are still updated.
        assert!(cache.apply(&heard(&published(1, "z"), false), now));
        assert!(shown(&mut cache).iter().any(|u| u.ends_with("region=z")));
    }

    #[test]
    fn other_types_are_ignored() {
        let mut cache = Cache::new("_other._tcp.local");
        cache.apply(&heard(&published(1, "a"), false), Instant::now());
        assert!(shown(&mut cache).is_empty());
    }
}
