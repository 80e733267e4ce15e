//! [`Cache`]: what a handle has heard on the link (RFC 6762 §10), keyed by instance, and the
//! URLs it makes. Pure state with explicit clocks, so every rule is unit-tested:
//!
//! - records are kept for their TTL, at most [`MAX_TTL`]; a goodbye (TTL 0) or a flushed
//!   record lingers one second (§10.1, §10.2), which is also what debounces removals: an
//!   instance announced again within that second never leaves;
//! - an instance is shown once its PTR, SRV, TXT and an address of its host are all known, and
//!   every later record about it is an update of that one entry (an upsert by instance name);
//! - records near the end of their life are asked for again (§5.2), missing ones at once,
//!   then at doubling intervals per name (1 s, 2 s, 4 s … up to an hour), within a budget the
//!   caller gives, those waiting longest first;
//! - what anyone on the link can make a handle keep is bounded: names in all
//!   ([`MAX_NAMES`]), addresses per host ([`MAX_ADDRESSES`]), host names no SRV refers to
//!   ([`MAX_LOOSE_HOSTS`], each for at most [`LOOSE_LIFE`]) and instances still missing a
//!   record ([`MAX_HALF_KNOWN`], each for at most [`HALF_KNOWN_LIFE`]). When the cache is
//!   full those two kinds go first, oldest first, so a flood of them never keeps out the
//!   complete instances a subscription is waiting for;
//! - an instance the prober lost stays hidden until it answers a probe again.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use srpc_registry_kit::{AgedSet, Url};
use tokio::time::Instant;
use tracing::warn;

use crate::record::url_of;
use crate::wire::{Data, Message, T_A, T_ANY, T_PTR, key};

/// How long a goodbye or a flushed record lingers (RFC 6762 §10.1).
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// The first gap between two questions about one name; it doubles after each.
const FIRST_ASK_GAP: Duration = Duration::from_secs(1);
/// The longest gap between two questions about one name (RFC 6762 §5.2: one hour).
const MAX_ASK_GAP: Duration = Duration::from_secs(3600);
/// The longest a record is kept, whatever TTL it came with (the DNS-SD TTL of PTR, SRV and
/// TXT records: 75 min). A record still published is asked for before then.
pub(crate) const MAX_TTL: u32 = 4500;
/// The most addresses kept for one host name.
pub(crate) const MAX_ADDRESSES: usize = 16;
/// The most host names kept that no SRV record refers to.
pub(crate) const MAX_LOOSE_HOSTS: usize = 1024;
/// How long a host name no SRV refers to is kept, whatever its TTL.
pub(crate) const LOOSE_LIFE: Duration = Duration::from_secs(120);
/// The most instances kept that still miss a record (a PTR without SRV or TXT, …).
pub(crate) const MAX_HALF_KNOWN: usize = 1024;
/// How long an instance may miss a record before it is dropped (seven questions, at 1, 2, 4
/// … 64 s, fit in it).
pub(crate) const HALF_KNOWN_LIFE: Duration = Duration::from_secs(130);

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
            now + Duration::from_secs(u64::from(ttl.min(MAX_TTL)))
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

/// The most instances and hosts a cache holds: what a hostile or broken peer on the link
/// can make a handle keep is bounded. When full, loose hosts and half-known instances make
/// room; records of new names beyond that are dropped, with one `warn`.
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

impl Entry {
    fn is_complete(&self) -> bool {
        self.ptr.is_some() && self.srv.is_some() && self.txt.is_some()
    }

    fn target(&self) -> Option<&str> {
        self.srv.as_ref().map(|(_, target, _)| target.as_str())
    }
}

/// An instance's URL from its records and its host's addresses, the addresses oldest first
/// as they were heard, so the URL does not flip between them. Cached in `Entry::made` by
/// whoever needs it first.
fn make_url(
    label: &str,
    addresses: &HashMap<IpAddr, Life>,
    port: u16,
    txt: &Txt,
) -> std::result::Result<Url, String> {
    let mut heard: Vec<(IpAddr, Instant)> =
        addresses.iter().map(|(a, l)| (*a, l.received)).collect();
    heard.sort_by_key(|(a, at)| (*at, *a));
    let addresses: Vec<IpAddr> = heard.into_iter().map(|(a, _)| a).collect();
    url_of(label, &addresses, port, txt).map_err(|e| e.to_string())
}

/// When a name may be asked about again, and the gap after that.
#[derive(Debug, Clone, Copy)]
struct Asked {
    next: Instant,
    gap: Duration,
}

/// What a handle heard about one service type.
#[derive(Debug)]
pub(crate) struct Cache {
    /// `<type>.local` as a key.
    service: String,
    /// `.<type>.local`: the suffix of instance names.
    suffix: String,
    instances: HashMap<String, Entry>,
    hosts: HashMap<String, HashMap<IpAddr, Life>>,
    /// How many SRV records name each host.
    refs: HashMap<String, usize>,
    /// Hosts no SRV names, by when they became so.
    loose: AgedSet<String>,
    /// Instances missing a record, by when they began to.
    half_known: AgedSet<String>,
    asked: HashMap<String, Asked>,
    /// The most names held ([`MAX_NAMES`]).
    limit: usize,
    /// Whether the warning that the limit was reached was given.
    full_warned: bool,
    /// Whether the warning that a host had too many addresses was given.
    addresses_warned: bool,
    /// What the handle's subscriptions ask for: when the cache is full, complete instances
    /// none of them selects make room for ones they do.
    queries: Vec<Url>,
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
            refs: HashMap::new(),
            loose: AgedSet::new(),
            half_known: AgedSet::new(),
            asked: HashMap::new(),
            limit: MAX_NAMES,
            full_warned: false,
            addresses_warned: false,
            queries: Vec::new(),
        }
    }

    /// What the handle's subscriptions ask for now.
    pub(crate) fn set_queries(&mut self, queries: Vec<Url>) {
        self.queries = queries;
    }

    /// Drops the oldest tenth (at least one) of the complete instances no subscription
    /// selects: one scan buys room for many records, so a flood at a full cache costs O(1)
    /// per record. Whether anything went.
    fn evict_unwanted(&mut self, now: Instant) -> bool {
        let queries = std::mem::take(&mut self.queries);
        let mut unwanted: Vec<(Instant, String)> = Vec::new();
        for (name, entry) in &mut self.instances {
            let (Some(ptr), Some((port, target, _)), Some((txt, _))) =
                (&entry.ptr, &entry.srv, &entry.txt)
            else {
                continue;
            };
            let wanted = match self.hosts.get(target) {
                Some(addresses) => {
                    let made = entry
                        .made
                        .get_or_insert_with(|| make_url(&entry.label, addresses, *port, txt));
                    made.as_ref()
                        .is_ok_and(|url| queries.iter().any(|q| dubbo_url::is_match(q, url)))
                }
                None => false,
            };
            if !wanted {
                unwanted.push((ptr.received, name.clone()));
            }
        }
        self.queries = queries;
        if unwanted.is_empty() {
            return false;
        }
        unwanted.sort_unstable();
        let drop = (self.limit / 10).max(1).min(unwanted.len());
        for (_, name) in unwanted.into_iter().take(drop) {
            self.remove_instance(&name, now);
        }
        true
    }

    fn names(&self) -> usize {
        self.instances.len() + self.hosts.len()
    }

    /// An SRV record stopped naming `old` and now names `new` (either may be none).
    fn retarget(&mut self, old: Option<&str>, new: Option<&str>, now: Instant) {
        if old == new {
            return;
        }
        if let Some(new) = new {
            *self.refs.entry(new.to_owned()).or_default() += 1;
            self.loose.remove(&new.to_owned());
        }
        if let Some(old) = old {
            let left = match self.refs.get_mut(old) {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n
                }
                None => 0,
            };
            if left == 0 {
                self.refs.remove(old);
                if self.hosts.contains_key(old) {
                    self.loose.insert(old.to_owned(), now);
                }
            }
        }
    }

    fn is_referenced(&self, host: &str) -> bool {
        self.refs.get(host).is_some_and(|n| *n > 0)
    }

    /// Drops an instance and what only it held.
    fn remove_instance(&mut self, name: &str, now: Instant) {
        if let Some(entry) = self.instances.remove(name) {
            self.retarget(entry.target(), None, now);
        }
        self.half_known.remove(&name.to_owned());
        self.asked.remove(name);
    }

    fn remove_host(&mut self, name: &str) {
        self.hosts.remove(name);
        self.loose.remove(&name.to_owned());
        self.asked.remove(name);
    }

    /// Keeps the half-known set in step with an instance that just changed, within its bound.
    fn track(&mut self, name: &str, now: Instant) {
        match self.instances.get(name) {
            Some(entry) if entry.is_complete() => {
                self.half_known.remove(&name.to_owned());
            }
            Some(_) => {
                if !self.half_known.contains(&name.to_owned()) {
                    self.half_known.insert(name.to_owned(), now);
                }
            }
            None => {
                self.half_known.remove(&name.to_owned());
            }
        }
        while self.half_known.len() > MAX_HALF_KNOWN {
            match self.half_known.pop_oldest() {
                Some(oldest) => self.remove_instance(&oldest, now),
                None => break,
            }
        }
    }

    /// Makes room for one more name: loose hosts go first, then half-known instances, the
    /// oldest of each first, then complete instances no subscription selects. Whether there
    /// is room.
    fn make_room(&mut self, now: Instant) -> bool {
        while self.names() >= self.limit {
            if let Some(host) = self.loose.pop_oldest() {
                self.remove_host(&host);
            } else if let Some(instance) = self.half_known.pop_oldest() {
                self.remove_instance(&instance, now);
            } else if !self.evict_unwanted(now) {
                return false;
            }
        }
        true
    }

    /// Takes in the records of a response. Returns whether what the cache shows may have
    /// changed (a TTL refresh of records it already had is not a change).
    pub(crate) fn apply(&mut self, message: &Message, now: Instant) -> bool {
        let mut flushed: HashSet<&str> = HashSet::new();
        let mut changed = false;
        let mut hosts_changed: HashSet<String> = HashSet::new();
        let mut touched: HashSet<&str> = HashSet::new();
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
            if !known && !self.make_room(now) {
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
            // An answer about a name resets its questions' backoff.
            self.asked.remove(record.name.as_str());
            match &record.data {
                Data::Ptr { target, instance } => {
                    let entry = self.instances.entry(target.clone()).or_default();
                    if entry.ptr.is_none() || entry.label != *instance {
                        entry.label.clone_from(instance);
                        entry.made = None;
                        changed = true;
                    }
                    entry.ptr = Some(life);
                    touched.insert(target);
                }
                Data::Srv { port, target } => {
                    let entry = self.instances.entry(record.name.clone()).or_default();
                    let old = entry.target().map(str::to_owned);
                    if entry
                        .srv
                        .as_ref()
                        .is_none_or(|(p, t, _)| p != port || t != target)
                    {
                        entry.made = None;
                        changed = true;
                    }
                    entry.srv = Some((*port, target.clone(), life));
                    self.retarget(old.as_deref(), Some(target), now);
                    touched.insert(&record.name);
                }
                Data::Txt(pairs) => {
                    let entry = self.instances.entry(record.name.clone()).or_default();
                    if entry.txt.as_ref().is_none_or(|(t, _)| t != pairs) {
                        entry.made = None;
                        changed = true;
                    }
                    entry.txt = Some((pairs.clone(), life));
                    touched.insert(&record.name);
                }
                Data::Addr(address) => {
                    let new_host = !self.hosts.contains_key(&record.name);
                    let addresses = self.hosts.entry(record.name.clone()).or_default();
                    if record.flush && record.ttl > 0 && flushed.insert(&record.name) {
                        // Cache flush: what this message says replaces what came before,
                        // except records received within the last second (§10.2).
                        for old in addresses.values_mut() {
                            if now.saturating_duration_since(old.received) > LINGER {
                                old.expires = old.expires.min(now + LINGER);
                            }
                        }
                    }
                    if !addresses.contains_key(address) && addresses.len() >= MAX_ADDRESSES {
                        if !self.addresses_warned {
                            self.addresses_warned = true;
                            warn!(backend = crate::SCHEME, host = %record.name,
                                limit = MAX_ADDRESSES,
                                "mDNS host with too many addresses: further ones are dropped");
                        }
                        continue;
                    }
                    if addresses.insert(*address, life).is_none() {
                        hosts_changed.insert(record.name.clone());
                    }
                    if new_host && !self.is_referenced(&record.name) {
                        self.loose.insert(record.name.clone(), now);
                        while self.loose.len() > MAX_LOOSE_HOSTS {
                            match self.loose.pop_oldest() {
                                Some(oldest) => self.remove_host(&oldest),
                                None => break,
                            }
                        }
                    }
                }
            }
        }
        for name in touched {
            self.track(name, now);
        }
        // Only hosts an SRV names change what is shown.
        hosts_changed.retain(|host| self.is_referenced(host));
        if !hosts_changed.is_empty() {
            changed = true;
            self.remake_for_hosts(&hosts_changed);
        }
        changed
    }

    /// Instances whose SRV names one of `hosts` must make their URL again.
    fn remake_for_hosts(&mut self, hosts: &HashSet<String>) {
        for entry in self.instances.values_mut() {
            if entry.target().is_some_and(|target| hosts.contains(target)) {
                entry.made = None;
            }
        }
    }

    /// Drops what expired by `now`, and loose hosts and half-known instances kept past their
    /// bounded lives. Returns whether anything shown may have changed.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let alive = |life: &Life| life.expires > now;
        let mut retargeted: Vec<(String, String)> = Vec::new();
        let mut incomplete: Vec<String> = Vec::new();
        for (name, entry) in &mut self.instances {
            let mut gone = false;
            if entry.ptr.is_some_and(|l| !alive(&l)) {
                entry.ptr = None;
                gone = true;
            }
            if entry.srv.as_ref().is_some_and(|(_, _, l)| !alive(l)) {
                if let Some((_, target, _)) = entry.srv.take() {
                    retargeted.push((name.clone(), target));
                }
                gone = true;
            }
            if entry.txt.as_ref().is_some_and(|(_, l)| !alive(l)) {
                entry.txt = None;
                gone = true;
            }
            if gone {
                entry.made = None;
                changed = true;
                incomplete.push(name.clone());
            }
        }
        for (_, target) in &retargeted {
            self.retarget(Some(target), None, now);
        }
        self.instances
            .retain(|_, e| e.ptr.is_some() || e.srv.is_some() || e.txt.is_some());
        for name in &incomplete {
            self.track(name, now);
        }
        for name in self.half_known.expire(now, HALF_KNOWN_LIFE) {
            self.remove_instance(&name, now);
            changed = true;
        }
        for host in self.loose.expire(now, LOOSE_LIFE) {
            self.remove_host(&host);
        }
        let mut hosts_changed: HashSet<String> = HashSet::new();
        for (host, addresses) in &mut self.hosts {
            let before = addresses.len();
            addresses.retain(|_, l| alive(l));
            if addresses.len() != before {
                hosts_changed.insert(host.clone());
            }
        }
        let emptied: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, a)| a.is_empty())
            .map(|(h, _)| h.clone())
            .collect();
        for host in emptied {
            self.remove_host(&host);
        }
        hosts_changed.retain(|host| self.is_referenced(host));
        if !hosts_changed.is_empty() {
            changed = true;
            self.remake_for_hosts(&hosts_changed);
        }
        if self.names() < self.limit {
            self.full_warned = false;
        }
        // Questions about names no longer held are forgotten.
        let (instances, hosts, service) = (&self.instances, &self.hosts, &self.service);
        self.asked.retain(|name, _| {
            name == service || instances.contains_key(name) || hosts.contains_key(name)
        });
        changed
    }

    /// Forgets an instance at once (its own handle said goodbye).
    pub(crate) fn forget(&mut self, fullname: &str) {
        self.remove_instance(fullname, Instant::now());
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
            let made = entry
                .made
                .get_or_insert_with(|| make_url(&entry.label, addresses, *port, txt));
            match made {
                Ok(url) => {
                    out.insert(name.clone(), url.clone());
                }
                Err(error) => bad.push((name.clone(), error.clone())),
            }
        }
        out
    }

    /// The questions to send now, at most `budget`: records near the end of their life (one
    /// PTR question for the type covers them), and what incomplete instances lack. A name is
    /// asked again only after a gap that doubles each time (RFC 6762 §5.2) and is reset when
    /// it is answered; those waiting longest go first.
    pub(crate) fn wants(&mut self, now: Instant, budget: usize) -> Vec<Ask> {
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
            for l in addresses.values_mut() {
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
        asks.retain(|ask| self.asked.get(&ask.name).is_none_or(|a| a.next <= now));
        // Never asked first, then those due longest ago.
        asks.sort_by_key(|ask| self.asked.get(&ask.name).map(|a| a.next));
        asks.truncate(budget);
        for ask in &asks {
            let gap = self
                .asked
                .get(&ask.name)
                .map_or(FIRST_ASK_GAP, |a| (a.gap * 2).min(MAX_ASK_GAP));
            self.asked.insert(
                ask.name.clone(),
                Asked {
                    next: now + gap,
                    gap,
                },
            );
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
        let asks = cache.wants(t0, usize::MAX);
        assert_eq!(
            asks,
            [Ask {
                name: "echo-1._srpc._tcp.local".into(),
                qtype: T_ANY
            }]
        );
        assert!(
            cache.wants(t0, usize::MAX).is_empty(),
            "not twice within a second"
        );
        cache.apply(&heard(&published(1, "a"), false), t0);
        assert!(
            cache
                .wants(t0 + Duration::from_secs(2), usize::MAX)
                .is_empty()
        );
        let asks = cache.wants(t0 + Duration::from_secs(97), usize::MAX);
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
        // Subscribed: none of them makes room for another.
        cache.set_queries(vec![
            Url::parse("consumer://127.0.0.1/com.acme.Echo?category=providers").unwrap(),
        ]);
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

    fn record(name: &str, ttl: u32, data: Data) -> crate::wire::Record {
        crate::wire::Record {
            name: name.into(),
            data,
            ttl,
            flush: false,
        }
    }

    /// A PTR to `echo-<i>._srpc._tcp.local` and nothing else, with the longest TTL.
    fn ghost(i: usize) -> Message {
        Message {
            response: true,
            records: vec![record(
                "_srpc._tcp.local",
                u32::MAX,
                Data::Ptr {
                    target: format!("ghost-{i}._srpc._tcp.local"),
                    instance: format!("Ghost-{i}"),
                },
            )],
            ..Message::default()
        }
    }

    fn host_address(host: &str, last: u8) -> Message {
        Message {
            response: true,
            records: vec![record(
                host,
                u32::MAX,
                Data::Addr(IpAddr::from([10, 0, 0, last])),
            )],
            ..Message::default()
        }
    }

    #[test]
    fn half_known_names_are_asked_ever_less_often_within_a_budget_then_dropped() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let t0 = Instant::now();
        for i in 0..20_000 {
            cache.apply(&ghost(i), t0);
        }
        assert_eq!(cache.instances.len(), MAX_HALF_KNOWN, "the newest are kept");
        assert!(cache.instances.contains_key("ghost-19999._srpc._tcp.local"));
        // Within a budget: 100 now, the next 100 at the next call, names not yet asked first.
        let first = cache.wants(t0, 100);
        assert_eq!(first.len(), 100);
        let second = cache.wants(t0, 100);
        assert!(
            second.iter().all(|a| !first.contains(a)),
            "waiting names go first"
        );
        // Unbounded budget: over a minute, each name is asked at 0, 1, 3, 7, 15, 31 s (and
        // then 63 s): six times, not sixty.
        let mut cache = Cache::new("_srpc._tcp.local");
        for i in 0..100 {
            cache.apply(&ghost(i), t0);
        }
        let mut asked = 0;
        for tick in 0..240 {
            let now = t0 + Duration::from_millis(250 * tick);
            cache.expire(now);
            asked += cache.wants(now, usize::MAX).len();
        }
        assert_eq!(asked, 100 * 6);
        // And they do not live forever, whatever their TTL.
        cache.expire(t0 + HALF_KNOWN_LIFE + Duration::from_secs(1));
        assert!(cache.instances.is_empty());
        assert!(
            cache
                .wants(t0 + Duration::from_secs(200), usize::MAX)
                .is_empty()
        );
    }

    #[test]
    fn an_answer_resets_a_names_backoff() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let t0 = Instant::now();
        let mut m = heard(&published(1, "a"), false);
        m.records.retain(|r| matches!(r.data, Data::Ptr { .. }));
        cache.apply(&m, t0);
        assert_eq!(cache.wants(t0, usize::MAX).len(), 1);
        assert_eq!(
            cache.wants(t0 + Duration::from_secs(1), usize::MAX).len(),
            1
        );
        assert!(
            cache
                .wants(t0 + Duration::from_secs(2), usize::MAX)
                .is_empty()
        );
        // The instance answers: complete, and its name is asked again at once when needed.
        cache.apply(
            &heard(&published(1, "a"), false),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(shown(&mut cache).len(), 1);
        assert!(!cache.asked.contains_key("echo-1._srpc._tcp.local"));
    }

    #[test]
    fn a_flood_of_unrelated_hosts_is_bounded_and_does_not_block_discovery() {
        let mut cache = Cache::new("_srpc._tcp.local");
        cache.limit = 500;
        let t0 = Instant::now();
        for i in 0..5_000 {
            cache.apply(&host_address(&format!("h{i}.local"), 1), t0);
        }
        assert!(
            cache.hosts.len() <= MAX_LOOSE_HOSTS.min(500),
            "{}",
            cache.hosts.len()
        );
        // A provider announced after the flood is shown.
        let later = t0 + Duration::from_secs(60);
        assert!(cache.apply(&heard(&published(7, "a"), false), later));
        assert_eq!(
            shown(&mut cache),
            ["dubbo://127.0.0.1:7/com.acme.Echo?region=a"]
        );
        // Loose hosts leave after a bounded time, whatever their TTL; the referenced one
        // stays for its own.
        cache.expire(t0 + LOOSE_LIFE + Duration::from_secs(1));
        assert_eq!(cache.hosts.len(), 1);
        assert_eq!(shown(&mut cache).len(), 1);
    }

    #[test]
    fn a_full_cache_makes_room_for_what_subscriptions_ask_for() {
        let mut cache = Cache::new("_srpc._tcp.local");
        cache.limit = 21; // one host and twenty instances
        cache.set_queries(vec![
            Url::parse("consumer://127.0.0.1/com.acme.Wanted?category=providers").unwrap(),
        ]);
        let t0 = Instant::now();
        for port in 1..=30 {
            cache.apply(&heard(&published(port, "a"), false), t0);
        }
        assert_eq!(shown(&mut cache).len(), 20, "full of com.acme.Echo");
        let mut wanted = published(100, "a");
        wanted.txt[2].1 = "com.acme.Wanted".into();
        cache.apply(&heard(&wanted, false), t0 + Duration::from_secs(1));
        assert!(
            shown(&mut cache)
                .iter()
                .any(|u| u.contains("com.acme.Wanted")),
            "{:?}",
            shown(&mut cache)
        );
        // Nothing unwanted left to drop: a full cache of wanted instances keeps them.
        let mut full = Cache::new("_srpc._tcp.local");
        full.limit = 3;
        full.set_queries(vec![
            Url::parse("consumer://127.0.0.1/com.acme.Echo?category=providers").unwrap(),
        ]);
        for port in 1..=5 {
            full.apply(&heard(&published(port, "a"), false), t0);
        }
        assert_eq!(shown(&mut full).len(), 2);
        assert!(full.full_warned);
    }

    #[test]
    fn a_host_keeps_a_bounded_number_of_addresses() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let t0 = Instant::now();
        cache.apply(&heard(&published(1, "a"), false), t0);
        let host = "srpc-127-0-0-1.local";
        for last in 0..=255 {
            cache.apply(&host_address(host, last), t0 + Duration::from_secs(1));
        }
        assert_eq!(cache.hosts[host].len(), MAX_ADDRESSES);
        assert!(cache.addresses_warned);
        // The address it was announced with is still the one shown.
        assert_eq!(
            shown(&mut cache),
            ["dubbo://127.0.0.1:1/com.acme.Echo?region=a"]
        );
    }

    #[test]
    fn ttls_are_capped() {
        let mut cache = Cache::new("_srpc._tcp.local");
        let t0 = Instant::now();
        let mut m = heard(&published(1, "a"), false);
        for r in &mut m.records {
            r.ttl = u32::MAX;
        }
        cache.apply(&m, t0);
        cache.expire(t0 + Duration::from_secs(u64::from(MAX_TTL) + 1));
        assert!(shown(&mut cache).is_empty());
    }

    #[test]
    fn other_types_are_ignored() {
        let mut cache = Cache::new("_other._tcp.local");
        cache.apply(&heard(&published(1, "a"), false), Instant::now());
        assert!(shown(&mut cache).is_empty());
    }
}
