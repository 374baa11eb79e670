//! How many refused requests are logged one by one, per client address.
//!
//! Why: every refused request leaves an audit entry, a durable write. Without a limit, anyone
//! who can reach the port could grow the audit log, and take the writer's time, as fast as
//! they can send bad tokens. Past `limits.refusals_per_minute` refusals from one address (an
//! IPv6 /64 counts as one address), or `limits.refusals_per_minute_all` from all addresses
//! together, a refusal is answered 429 with `Retry-After` and counted instead of logged:
//!
//! - the first refusal past the limit writes an `access-refusals-limited` entry (with that
//!   refusal's rule, the address and the limit) before it is answered, so the log shows
//!   durably that a limit engaged and from where;
//! - every [`COUNT_PERIOD`], and at shutdown, an `access-refusals-counted` entry says how many
//!   more refusals came from that address, from when to when, and under which rules.
//!
//! So nothing refused goes unlogged, and a flood costs the log a few entries a minute instead
//! of one per request. A crash loses at most the count of the last period, never the entry
//! saying that the limit engaged. Callers whose credentials are good are never limited here:
//! the limit only decides how a refusal is logged and answered. The counting itself is
//! `governor`'s (GCRA, the quota refills continuously).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use ipnet::IpNet;
use serde_json::json;

use crate::audit::{self, Actor, AuditEntry};
use crate::config::{ForwardedHeader, Limits};
use crate::exchange::{Gateway, now_utc};

/// How often the counts of limited refusals are written to the log.
pub const COUNT_PERIOD: Duration = Duration::from_secs(10);

/// Where refusals come from, as the limit counts them: an IPv4 address, an IPv6 /64, or
/// unknown (a request that did not come through the server's listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(Option<IpAddr>);

impl Source {
    /// The source of a peer address: IPv4 (also when mapped into IPv6) as is, IPv6 cut to its
    /// /64 (one host usually holds a whole /64).
    #[must_use]
    pub fn of(peer: Option<IpAddr>) -> Self {
        Self(peer.map(|address| match address.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
            v4 => v4,
        }))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Some(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            None => f.write_str("unknown"),
        }
    }
}

/// An address or a CIDR range (`limits.trusted_proxies`).
#[must_use]
pub fn parse_network(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The proxies whose `X-Forwarded-For` (or `Forwarded`) is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// From the configuration (checked at start, see [`crate::config::Config::check`]).
    #[must_use]
    pub fn new(proxies: &[String], header: ForwardedHeader) -> Self {
        Self {
            networks: proxies.iter().filter_map(|p| parse_network(p)).collect(),
            header,
        }
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks.iter().any(|net| net.contains(&address))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
    /// hop of the configured header (its values in order, each a comma-separated list) that is
    /// not itself trusted, or the farthest when all are. A hop that is not an address (`unknown`,
    /// an obfuscated name, a `Forwarded` element without `for`) ends the walk there: what lies
    /// beyond it cannot be believed.
    #[must_use]
    pub fn client(&self, peer: Option<IpAddr>, values: &[&str]) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        match self.header {
            ForwardedHeader::XForwardedFor => self.nearest_untrusted(
                peer,
                values
                    .iter()
                    .rev()
                    .flat_map(|value| value.rsplit(','))
                    .map(|hop| hop.trim().parse::<IpAddr>().ok()),
            ),
            ForwardedHeader::Forwarded => self.nearest_untrusted(
                peer,
                values
                    .iter()
                    .rev()
                    .flat_map(|value| forwarded_for_nodes(value).into_iter().rev()),
            ),
        }
    }

    /// The walk of [`Self::client`] over hops nearest first (`None`: not an address).
    fn nearest_untrusted(
        &self,
        peer: IpAddr,
        nearest_first: impl Iterator<Item = Option<IpAddr>>,
    ) -> Option<IpAddr> {
        let mut client = peer;
        for hop in nearest_first {
            let Some(address) = hop else {
                break;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        Some(client)
    }
}

/// The `for` node of each element of an RFC 7239 `Forwarded` value, in order; `None` where
/// an element has none or it is not an address (`unknown`, an obfuscated `_name`).
fn forwarded_for_nodes(value: &str) -> Vec<Option<IpAddr>> {
    outside_quotes(value, ',')
        .map(|element| {
            outside_quotes(element, ';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, node)| node_address(&unquoted(node.trim())))
        })
        .collect()
}

/// `text` split at `separator` where it is not inside a quoted string.
fn outside_quotes(text: &str, separator: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    text.split(move |c: char| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            return true;
        }
        false
    })
}

/// A token or quoted string's text.
fn unquoted(value: &str) -> String {
    match value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
    {
        Some(inner) => {
            let mut text = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                text.push(if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                });
            }
            text
        }
        None => value.to_owned(),
    }
}

/// The address of a node (`192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`,
/// `[2001:db8::1]:8080`), or `None` for `unknown` and obfuscated names.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return address.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let host = node.split_once(':').map_or(node, |(host, _port)| host);
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// Which limit a refusal went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.refusals_per_minute`.
    PerAddress,
    /// `limits.refusals_per_minute_all`.
    AllAddresses,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Self::PerAddress => "refusals_per_minute",
            Self::AllAddresses => "refusals_per_minute_all",
        }
    }
}

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Log it as an `access-refused` entry and answer it as refused.
    Log,
    /// The first refusal past a limit from this source: log an `access-refusals-limited`
    /// entry, answer 429.
    Open {
        /// The limit it went past.
        limit: Limit,
        /// When the source may be refused with a logged entry again.
        retry_after: Duration,
    },
    /// Counted: answer 429, log nothing now.
    Count {
        /// When the source may be refused with a logged entry again.
        retry_after: Duration,
    },
}

/// Refusals counted for one source since the last count entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    /// First and last (UTC, RFC 3339), when `count > 0`.
    pub first: Option<String>,
    /// See `first`.
    pub last: Option<String>,
    /// How many under each rule.
    pub rules: BTreeMap<String, u64>,
}

impl Counted {
    /// How many, under all rules.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.rules.values().sum()
    }

    fn add(&mut self, rule: &str, at: &str) {
        if self.first.is_none() {
            self.first = Some(at.to_owned());
        }
        self.last = Some(at.to_owned());
        *self.rules.entry(rule.to_owned()).or_default() += 1;
    }

    fn merge(&mut self, earlier: Counted) {
        if earlier.first.is_some() {
            self.first = earlier.first;
        }
        if self.last.is_none() {
            self.last = earlier.last;
        }
        for (rule, n) in earlier.rules {
            *self.rules.entry(rule).or_default() += n;
        }
    }
}

/// A source past a limit.
#[derive(Debug, Default)]
struct Tally {
    counted: Counted,
    /// Opened since the last count entry: kept by the next one even when nothing more came.
    fresh: bool,
}

/// The limits and the counts of the refusals past them.
pub struct RefusalLimiter {
    per_address: Option<DefaultKeyedRateLimiter<Source>>,
    all: Option<DefaultDirectRateLimiter>,
    per_minute: u32,
    all_per_minute: u32,
    proxies: TrustedProxies,
    /// Sources past a limit, with what they sent since the last count entry.
    counted: Mutex<HashMap<Source, Tally>>,
}

impl fmt::Debug for RefusalLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefusalLimiter")
            .field("per_minute", &self.per_minute)
            .field("all_per_minute", &self.all_per_minute)
            .finish_non_exhaustive()
    }
}

impl RefusalLimiter {
    /// The limits of the configuration (`0` turns one off).
    #[must_use]
    pub fn new(limits: &Limits) -> Self {
        Self {
            per_address: NonZeroU32::new(limits.refusals_per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            all: NonZeroU32::new(limits.refusals_per_minute_all)
                .map(|n| RateLimiter::direct(Quota::per_minute(n))),
            per_minute: limits.refusals_per_minute,
            all_per_minute: limits.refusals_per_minute_all,
            proxies: TrustedProxies::new(&limits.trusted_proxies, limits.forwarded_header),
            counted: Mutex::new(HashMap::new()),
        }
    }

    /// Where a request comes from: its peer, or the client a trusted proxy names
    /// ([`TrustedProxies::client`]) in the header `limits.forwarded_header` chooses.
    #[must_use]
    pub fn source(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Source {
        let forwarded: Vec<&str> = headers
            .get_all(self.proxies.header.name())
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        Source::of(self.proxies.client(peer, &forwarded))
    }

    /// Decides how the refusal of a request from `source` under `rule` is logged.
    pub fn admit(&self, source: Source, rule: &str) -> Admission {
        let clock = DefaultClock::default();
        let past = match self.per_address.as_ref().map(|l| l.check_key(&source)) {
            Some(Err(not_until)) => Some((Limit::PerAddress, not_until)),
            _ => match self.all.as_ref().map(RateLimiter::check) {
                Some(Err(not_until)) => Some((Limit::AllAddresses, not_until)),
                _ => None,
            },
        };
        let Some((limit, not_until)) = past else {
            return Admission::Log;
        };
        let retry_after = not_until.wait_time_from(clock.now());
        let mut counted = self.counted.lock().unwrap_or_else(PoisonError::into_inner);
        match counted.get_mut(&source) {
            Some(tally) => {
                tally.counted.add(rule, &now_utc());
                Admission::Count { retry_after }
            }
            None => {
                counted.insert(
                    source,
                    Tally {
                        counted: Counted::default(),
                        fresh: true,
                    },
                );
                Admission::Open { limit, retry_after }
            }
        }
    }

    /// The `access-refusals-limited` entry of an [`Admission::Open`] refusal.
    #[must_use]
    pub fn opening_entry(
        &self,
        source: Source,
        limit: Limit,
        operation: String,
        actor: Actor,
        refusal: (&str, &str, u16),
    ) -> AuditEntry {
        let (rule, message, status) = refusal;
        let digest = audit::digest(operation.as_bytes());
        let mut entry = AuditEntry::event(
            "access-refusals-limited",
            operation,
            actor,
            "refused",
            digest,
        );
        entry.issues = vec![audit::LoggedIssue {
            rule: rule.to_owned(),
            pointer: String::new(),
            message: message.to_owned(),
        }];
        let per_minute = match limit {
            Limit::PerAddress => self.per_minute,
            Limit::AllAddresses => self.all_per_minute,
        };
        entry.details = Some(json!({
            "status": 429,
            "refused_with": status,
            "peer": source.to_string(),
            "limit": limit.name(),
            "per_minute": per_minute,
            "then": format!(
                "further refusals from this address are counted in access-refusals-counted entries every {} s until it stays under the limit",
                COUNT_PERIOD.as_secs()
            ),
        }));
        entry
    }

    /// Takes the counts since the last call; a source with none is no longer past a limit
    /// and is forgotten (its next refusal past a limit opens again).
    fn take_counts(&self) -> Vec<(Source, Counted)> {
        let mut counted = self.counted.lock().unwrap_or_else(PoisonError::into_inner);
        counted.retain(|_, tally| !tally.counted.rules.is_empty() || tally.fresh);
        let mut taken: Vec<(Source, Counted)> = counted
            .iter_mut()
            .filter_map(|(source, tally)| {
                tally.fresh = false;
                (!tally.counted.rules.is_empty())
                    .then(|| (*source, std::mem::take(&mut tally.counted)))
            })
            .collect();
        drop(counted);
        if let Some(per_address) = &self.per_address {
            per_address.retain_recent();
        }
        taken.sort_by_key(|(source, _)| *source);
        taken
    }

    /// Puts counts whose entry could not be written back, to be written with the next.
    fn restore(&self, source: Source, earlier: Counted) {
        let mut counted = self.counted.lock().unwrap_or_else(PoisonError::into_inner);
        counted.entry(source).or_default().counted.merge(earlier);
    }

    /// Writes an `access-refusals-counted` entry for every source with refusals counted since
    /// the last call; counts that could not be written are kept for the next call.
    pub async fn write_counts(&self, gateway: &Gateway) {
        for (source, counted) in self.take_counts() {
            let operation = "refusals past a limit".to_owned();
            let digest = audit::digest(operation.as_bytes());
            let mut entry = AuditEntry::event(
                "access-refusals-counted",
                operation,
                Actor::anonymous(),
                "refused",
                digest,
            );
            entry.details = Some(json!({
                "status": 429,
                "peer": source.to_string(),
                "count": counted.count(),
                "first": counted.first,
                "last": counted.last,
                "rules": counted.rules,
            }));
            if gateway.record(entry).await.is_err() {
                tracing::error!(peer = %source, count = counted.count(), "cannot log counted refusals; kept for the next period");
                self.restore(source, counted);
            }
        }
    }

    /// Writes the counts every [`COUNT_PERIOD`] until `stop` resolves, then once more.
    pub async fn write_counts_until(
        self: std::sync::Arc<Self>,
        gateway: Gateway,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut ticks = tokio::time::interval(COUNT_PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    self.write_counts(&gateway).await;
                }
                () = &mut stop => break,
            }
        }
        self.write_counts(&gateway).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32, all: u32) -> RefusalLimiter {
        RefusalLimiter::new(&Limits {
            refusals_per_minute: per_minute,
            refusals_per_minute_all: all,
            ..Limits::default()
        })
    }

    fn address(text: &str) -> Source {
        Source::of(Some(text.parse().expect("address")))
    }

    #[test]
    fn an_ipv6_64_is_one_source_and_mapped_ipv4_is_ipv4() {
        assert_eq!(address("2001:db8:1:2::7"), address("2001:db8:1:2:ffff::1"));
        assert_ne!(address("2001:db8:1:2::7"), address("2001:db8:1:3::7"));
        assert_eq!(address("2001:db8:1:2::7").to_string(), "2001:db8:1:2::/64");
        assert_eq!(address("::ffff:192.0.2.7"), address("192.0.2.7"));
        assert_eq!(address("192.0.2.7").to_string(), "192.0.2.7");
        assert_eq!(Source::of(None).to_string(), "unknown");
    }

    #[test]
    fn past_the_limit_one_refusal_opens_and_the_rest_are_counted_per_source() {
        let limiter = limiter(3, 0);
        let (a, b) = (address("192.0.2.1"), address("192.0.2.2"));
        for _ in 0..3 {
            assert_eq!(limiter.admit(a, "auth.token-invalid"), Admission::Log);
        }
        assert!(matches!(
            limiter.admit(a, "auth.token-invalid"),
            Admission::Open {
                limit: Limit::PerAddress,
                ..
            }
        ));
        for rule in [
            "auth.token-invalid",
            "auth.credentials-missing",
            "auth.token-invalid",
        ] {
            let Admission::Count { retry_after } = limiter.admit(a, rule) else {
                panic!("counted");
            };
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(20));
        }
        // Another address has its own quota.
        assert_eq!(limiter.admit(b, "auth.token-invalid"), Admission::Log);

        let counts = limiter.take_counts();
        assert_eq!(counts.len(), 1);
        let (source, counted) = &counts[0];
        assert_eq!(*source, a);
        assert_eq!(counted.count(), 3);
        assert_eq!(counted.rules["auth.token-invalid"], 2);
        assert_eq!(counted.rules["auth.credentials-missing"], 1);
        assert!(counted.first.is_some() && counted.last.is_some());
        // Still past the limit: counted, not opened again, until a period passes quietly.
        assert!(matches!(
            limiter.admit(a, "auth.token-invalid"),
            Admission::Count { .. }
        ));
        assert_eq!(limiter.take_counts()[0].1.count(), 1);
        assert!(
            limiter.take_counts().is_empty(),
            "a quiet period forgets it"
        );
        assert!(matches!(
            limiter.admit(a, "auth.token-invalid"),
            Admission::Open { .. }
        ));
    }

    #[test]
    fn a_source_opened_just_before_a_count_is_not_opened_again_by_its_next_refusal() {
        let limiter = limiter(1, 0);
        let a = address("192.0.2.1");
        assert_eq!(limiter.admit(a, "r"), Admission::Log);
        assert!(matches!(limiter.admit(a, "r"), Admission::Open { .. }));
        assert!(limiter.take_counts().is_empty());
        assert!(matches!(limiter.admit(a, "r"), Admission::Count { .. }));
    }

    #[test]
    fn the_overall_limit_counts_every_address_together() {
        let limiter = limiter(0, 2);
        assert_eq!(limiter.admit(address("192.0.2.1"), "r"), Admission::Log);
        assert_eq!(limiter.admit(address("192.0.2.2"), "r"), Admission::Log);
        assert!(matches!(
            limiter.admit(address("192.0.2.3"), "r"),
            Admission::Open {
                limit: Limit::AllAddresses,
                ..
            }
        ));
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop_behind_trusted_proxies() {
        let proxies = TrustedProxies::new(
            &["10.0.0.0/8".into(), "192.0.2.9".into()],
            ForwardedHeader::XForwardedFor,
        );
        let ip = |text: &str| text.parse::<IpAddr>().expect("address");
        let client = |peer: &str, forwarded: &[&str]| proxies.client(Some(ip(peer)), forwarded);
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            client("203.0.113.5", &["198.51.100.1"]),
            Some(ip("203.0.113.5"))
        );
        // A trusted peer without the header is the client.
        assert_eq!(client("10.1.1.1", &[]), Some(ip("10.1.1.1")));
        // Behind trusted hops, the nearest untrusted one; what it claims is not believed.
        assert_eq!(
            client("10.1.1.1", &["198.51.100.66, 198.51.100.7", "10.2.2.2"]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client("::ffff:10.1.1.1", &["198.51.100.7, 192.0.2.9"]),
            Some(ip("198.51.100.7"))
        );
        // All trusted: the farthest.
        assert_eq!(
            client("10.1.1.1", &["10.3.3.3, 10.2.2.2"]),
            Some(ip("10.3.3.3"))
        );
        // Garbage ends the walk at the last believable hop.
        assert_eq!(
            client("10.1.1.1", &["198.51.100.1, unknown, 10.2.2.2"]),
            Some(ip("10.2.2.2"))
        );
        assert_eq!(proxies.client(None, &["198.51.100.1"]), None);
        assert_eq!(
            TrustedProxies::default().client(Some(ip("10.1.1.1")), &["198.51.100.1"]),
            Some(ip("10.1.1.1"))
        );
        assert!(parse_network("2001:db8::/32").is_some());
        assert!(parse_network("2001:db8::1").is_some());
        assert!(parse_network("10.0.0.0/33").is_none());
        assert!(parse_network("proxy.example").is_none());
    }

    #[test]
    fn forwarded_elements_give_their_for_nodes() {
        let ip = |text: &str| Some(text.parse::<IpAddr>().expect("address"));
        assert_eq!(
            forwarded_for_nodes("for=192.0.2.60;proto=http;by=203.0.113.43"),
            [ip("192.0.2.60")]
        );
        assert_eq!(
            forwarded_for_nodes(r#"For="[2001:db8:cafe::17]:4711", for=192.0.2.43:47011"#),
            [ip("2001:db8:cafe::17"), ip("192.0.2.43")]
        );
        assert_eq!(
            forwarded_for_nodes(r#"proto=https;FOR = "[2001:db8::1]" ; host=x"#),
            [ip("2001:db8::1")]
        );
        // Not addresses: unknown, obfuscated names, no `for`, a broken bracket.
        assert_eq!(
            forwarded_for_nodes(
                r#"for=unknown, for=_hidden, proto=http, for="[2001:db8::1", for=[::1]x"#
            ),
            [None, None, None, None, None]
        );
        // A comma or semicolon inside a quoted string does not split.
        assert_eq!(
            forwarded_for_nodes(r#"for="_a,b;c", for="\192.0.2.7""#),
            [None, ip("192.0.2.7")]
        );
        assert_eq!(forwarded_for_nodes(""), [None]);
    }

    #[test]
    fn behind_proxies_that_send_forwarded_only_that_header_names_the_client() {
        let proxies = TrustedProxies::new(&["10.0.0.0/8".into()], ForwardedHeader::Forwarded);
        let ip = |text: &str| text.parse::<IpAddr>().expect("address");
        let client = |forwarded: &[&str]| proxies.client(Some(ip("10.1.1.1")), forwarded);
        assert_eq!(
            client(&[
                "for=198.51.100.66, for=198.51.100.7",
                "for=10.2.2.2;proto=https"
            ]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client(&[r#"for="[2001:db8::5]:443""#]),
            Some(ip("2001:db8::5"))
        );
        // An element that names no address ends the walk at the last believable hop.
        assert_eq!(
            client(&["for=198.51.100.1, for=unknown, for=10.2.2.2"]),
            Some(ip("10.2.2.2"))
        );
        // X-Forwarded-For's syntax is not Forwarded's: nothing there is an address.
        assert_eq!(client(&["198.51.100.1"]), Some(ip("10.1.1.1")));
    }

    #[test]
    fn no_limit_logs_everything() {
        let limiter = limiter(0, 0);
        for _ in 0..1000 {
            assert_eq!(limiter.admit(address("192.0.2.1"), "r"), Admission::Log);
        }
    }

    #[test]
    fn counts_that_could_not_be_written_come_back() {
        let limiter = limiter(1, 0);
        let a = address("192.0.2.1");
        let _ = limiter.admit(a, "r");
        let _ = limiter.admit(a, "r");
        let _ = limiter.admit(a, "r");
        let _ = limiter.admit(a, "s");
        let (source, counted) = limiter.take_counts().remove(0);
        assert_eq!(counted.count(), 2);
        let _ = limiter.admit(a, "r");
        limiter.restore(source, counted);
        let again = limiter.take_counts().remove(0).1;
        assert_eq!(again.count(), 3);
        assert_eq!(again.rules["r"], 2);
        assert_eq!(again.rules["s"], 1);
    }
}
