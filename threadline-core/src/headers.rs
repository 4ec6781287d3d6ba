//! Reading request context from HTTP headers, shared by the web integrations.
//!
//! This module is framework-neutral: the axum and actix-web crates hand it header values as
//! bytes and the peer address, and get back the request id, correlation id, client IP and
//! trace id (W3C `traceparent`), plus the list of values that were dropped (too long, control
//! characters, not UTF-8, not an IP address, a malformed `traceparent`) so that they can log
//! them. A bad header never fails a request.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

pub use ipnet::IpNet;
use ipnet::Ipv4Net;

use crate::trace::{TRACEPARENT_HEADER, TraceContextError, TraceId, TraceParent};

/// Longest accepted header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 256;

/// Default request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Default correlation id header.
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
/// Default forwarded-for header.
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";

/// Which `x-forwarded-for` entries to believe.
///
/// Without a trusted proxy the client address is the TCP peer. Trusting the header from
/// anyone lets every client choose the IP recorded in the audit trail.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrustedProxies {
    /// Ignore `x-forwarded-for`; the client is the TCP peer (the default).
    #[default]
    None,
    /// Exactly this many proxies stand in front of the application, each appending the
    /// address it saw: the client is the `n`-th entry from the right.
    Hops(usize),
    /// Only requests whose TCP peer is one of these networks carry a trusted header; the client
    /// is the rightmost entry that is not itself a trusted proxy. Build it with
    /// [`TrustedProxies::networks`], which also takes bare addresses, or from
    /// [`IpNet`] values.
    Networks(Vec<IpNet>),
}

impl TrustedProxies {
    /// Trust proxies at these addresses or networks (`"10.0.0.0/8"`, `"127.0.0.1"`, `"::1"`).
    /// A bad entry is refused with [`HeaderConfigError::InvalidNetwork`], which names it.
    ///
    /// ```
    /// use threadline_core::{IpNet, TrustedProxies};
    /// let trusted = TrustedProxies::networks(["10.0.0.0/8", "127.0.0.1"])?;
    /// let lan: IpNet = "10.0.0.0/8".parse().unwrap();
    /// assert_eq!(trusted, TrustedProxies::Networks(vec![lan, "127.0.0.1/32".parse().unwrap()]));
    /// assert!(TrustedProxies::networks(["10.0.0.0/40"]).is_err());
    /// # Ok::<(), threadline_core::HeaderConfigError>(())
    /// ```
    pub fn networks<I, S>(networks: I) -> Result<Self, HeaderConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        networks
            .into_iter()
            .map(|n| parse_network(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies::Networks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        match self {
            TrustedProxies::Networks(nets) => {
                let ip = canonical(ip);
                nets.iter().any(|n| n.contains(&ip))
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Parses one trusted proxy: a CIDR network (`10.0.0.0/8`, `2001:db8::/32`) or a bare
/// address (a `/32` or `/128`). An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) becomes
/// its IPv4 form, since client and peer addresses are compared in that form.
fn parse_network(text: &str) -> Result<IpNet, HeaderConfigError> {
    let text = text.trim();
    let net = text
        .parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| HeaderConfigError::InvalidNetwork(text.to_owned()))?;
    Ok(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    })
}

/// A header configuration that cannot work.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderConfigError {
    /// Not an HTTP header name.
    #[error(
        "invalid header name {0:?}: use letters, digits and '-' only, such as \"x-request-id\""
    )]
    InvalidHeaderName(String),
    /// Not an IP address or CIDR network.
    #[error(
        "invalid trusted proxy {0:?}: use an IP address or a CIDR network such as \"10.0.0.0/8\""
    )]
    InvalidNetwork(String),
}

/// Why a header value was ignored.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Longer than [`MAX_HEADER_VALUE_BYTES`].
    TooLong(usize),
    /// Contains a control character (including tab, CR, LF and DEL).
    ControlCharacter,
    /// Not valid UTF-8.
    NotUtf8,
    /// An `x-forwarded-for` entry that is not an IP address.
    NotAnIpAddress,
    /// A `traceparent` value that breaks the W3C format, or more than one `traceparent`.
    MalformedTraceparent(TraceContextError),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::TooLong(n) => {
                write!(f, "{n} bytes, over the {MAX_HEADER_VALUE_BYTES}-byte limit")
            }
            DropReason::ControlCharacter => f.write_str("contains a control character"),
            DropReason::NotUtf8 => f.write_str("is not valid UTF-8"),
            DropReason::NotAnIpAddress => f.write_str("holds an entry that is not an IP address"),
            DropReason::MalformedTraceparent(e) => e.fmt(f),
        }
    }
}

/// A header value that was ignored, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedHeader {
    /// The header's name.
    pub header: String,
    /// Why it was dropped.
    pub reason: DropReason,
}

/// What [`ContextHeaders::extract`] read from a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractedHeaders {
    /// The request id, if a valid one was present.
    pub request_id: Option<String>,
    /// The correlation id, if a valid one was present.
    pub correlation_id: Option<String>,
    /// The client address: the peer, or a trusted `x-forwarded-for` entry.
    pub remote_ip: Option<IpAddr>,
    /// The trace id of a valid `traceparent` header.
    pub trace_id: Option<TraceId>,
    /// Values that were ignored.
    pub dropped: Vec<DroppedHeader>,
}

impl ExtractedHeaders {
    /// A context with these ids and address (actor unset), labelled with `source`.
    pub fn to_context(&self, source: Option<String>) -> crate::AuditContext {
        let mut ctx = crate::AuditContext::new();
        ctx.request_id.clone_from(&self.request_id);
        ctx.correlation_id.clone_from(&self.correlation_id);
        ctx.remote_ip = self.remote_ip;
        ctx.trace_id = self.trace_id;
        ctx.source = source;
        ctx
    }
}

/// Checks one header value: at most [`MAX_HEADER_VALUE_BYTES`] bytes of UTF-8 without
/// control characters. Surrounding spaces are trimmed; an empty value reads as absent.
///
/// ```
/// use threadline_core::{DropReason, sanitize_header_value};
/// assert_eq!(sanitize_header_value(b" req-1 "), Ok(Some("req-1")));
/// assert_eq!(sanitize_header_value(b"a\tb"), Err(DropReason::ControlCharacter));
/// assert_eq!(sanitize_header_value(&[b'x'; 300]), Err(DropReason::TooLong(300)));
/// ```
pub fn sanitize_header_value(value: &[u8]) -> Result<Option<&str>, DropReason> {
    if value.len() > MAX_HEADER_VALUE_BYTES {
        return Err(DropReason::TooLong(value.len()));
    }
    let text = std::str::from_utf8(value).map_err(|_| DropReason::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(DropReason::ControlCharacter);
    }
    let text = text.trim_matches(' ');
    Ok((!text.is_empty()).then_some(text))
}

/// Which headers carry the request context, and which proxies to trust.
///
/// ```
/// use threadline_core::{ContextHeaders, TrustedProxies};
/// let headers = ContextHeaders::default().with_trusted_proxies(TrustedProxies::Hops(1));
/// let got = headers.extract(
///     |name| match name {
///         "x-request-id" => vec![&b"req-1"[..]],
///         "x-forwarded-for" => vec![&b"203.0.113.9"[..]],
///         _ => vec![],
///     },
///     Some("10.0.0.2".parse().unwrap()),
///     None,
/// );
/// assert_eq!(got.request_id.as_deref(), Some("req-1"));
/// assert_eq!(got.remote_ip, Some("203.0.113.9".parse().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextHeaders {
    request_id: String,
    correlation_id: String,
    forwarded_for: String,
    trusted_proxies: TrustedProxies,
}

impl Default for ContextHeaders {
    fn default() -> Self {
        Self {
            request_id: REQUEST_ID_HEADER.to_owned(),
            correlation_id: CORRELATION_ID_HEADER.to_owned(),
            forwarded_for: FORWARDED_FOR_HEADER.to_owned(),
            trusted_proxies: TrustedProxies::None,
        }
    }
}

fn header_name(name: &str) -> Result<String, HeaderConfigError> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(HeaderConfigError::InvalidHeaderName(name.to_owned()))
    }
}

impl ContextHeaders {
    /// Uses another header for the request id (default `x-request-id`).
    pub fn request_id_header(mut self, name: &str) -> Result<Self, HeaderConfigError> {
        self.request_id = header_name(name)?;
        Ok(self)
    }

    /// Uses another header for the correlation id (default `x-correlation-id`).
    pub fn correlation_id_header(mut self, name: &str) -> Result<Self, HeaderConfigError> {
        self.correlation_id = header_name(name)?;
        Ok(self)
    }

    /// Uses another header for the forwarded client address (default `x-forwarded-for`).
    pub fn forwarded_for_header(mut self, name: &str) -> Result<Self, HeaderConfigError> {
        self.forwarded_for = header_name(name)?;
        Ok(self)
    }

    /// Sets which proxies may report the client address.
    #[must_use]
    pub fn with_trusted_proxies(mut self, trusted: TrustedProxies) -> Self {
        self.trusted_proxies = trusted;
        self
    }

    /// The request id header name (lowercase).
    pub fn request_id_name(&self) -> &str {
        &self.request_id
    }

    /// The correlation id header name (lowercase).
    pub fn correlation_id_name(&self) -> &str {
        &self.correlation_id
    }

    /// The forwarded-for header name (lowercase).
    pub fn forwarded_for_name(&self) -> &str {
        &self.forwarded_for
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    /// Reads the context from a request. `get_all(name)` returns every value of a header in
    /// order; `peer` is the TCP peer; `fallback_request_id` is used when the request id header
    /// is absent or dropped (for example tower-http's `RequestId` extension).
    pub fn extract<'a>(
        &self,
        get_all: impl Fn(&str) -> Vec<&'a [u8]>,
        peer: Option<IpAddr>,
        fallback_request_id: Option<&[u8]>,
    ) -> ExtractedHeaders {
        let mut dropped = Vec::new();
        let mut text = |name: &str, value: Option<&[u8]>| {
            value.and_then(|v| match sanitize_header_value(v) {
                Ok(v) => v.map(str::to_owned),
                Err(reason) => {
                    dropped.push(DroppedHeader {
                        header: name.to_owned(),
                        reason,
                    });
                    None
                }
            })
        };
        let request_id = text(&self.request_id, get_all(&self.request_id).first().copied())
            .or_else(|| text(&self.request_id, fallback_request_id));
        let correlation_id = text(
            &self.correlation_id,
            get_all(&self.correlation_id).first().copied(),
        );
        let peer = peer.map(canonical);
        let remote_ip = match self.client_ip(peer, &get_all(&self.forwarded_for)) {
            Ok(ip) => ip,
            Err(reason) => {
                dropped.push(DroppedHeader {
                    header: self.forwarded_for.clone(),
                    reason,
                });
                peer
            }
        };
        let trace_id = match trace_id(&get_all(TRACEPARENT_HEADER)) {
            Ok(id) => id,
            Err(reason) => {
                dropped.push(DroppedHeader {
                    header: TRACEPARENT_HEADER.to_owned(),
                    reason,
                });
                None
            }
        };
        ExtractedHeaders {
            request_id,
            correlation_id,
            remote_ip,
            trace_id,
            dropped,
        }
    }

    fn client_ip(
        &self,
        peer: Option<IpAddr>,
        forwarded: &[&[u8]],
    ) -> Result<Option<IpAddr>, DropReason> {
        let trust_header = match &self.trusted_proxies {
            TrustedProxies::None | TrustedProxies::Hops(0) => false,
            TrustedProxies::Hops(_) => true,
            TrustedProxies::Networks(_) => peer.is_some_and(|p| self.trusted_proxies.trusts(p)),
        };
        if !trust_header || forwarded.is_empty() {
            return Ok(peer);
        }
        let mut chain = Vec::new();
        for value in forwarded {
            if value.len() > 4 * MAX_HEADER_VALUE_BYTES {
                return Err(DropReason::TooLong(value.len()));
            }
            let text = std::str::from_utf8(value).map_err(|_| DropReason::NotUtf8)?;
            if text.chars().any(char::is_control) {
                return Err(DropReason::ControlCharacter);
            }
            for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                chain.push(parse_forwarded_ip(entry).ok_or(DropReason::NotAnIpAddress)?);
            }
        }
        let Some(&first) = chain.first() else {
            return Ok(peer);
        };
        Ok(Some(match &self.trusted_proxies {
            TrustedProxies::Hops(n) => chain[chain.len().saturating_sub(*n)],
            _ => chain
                .iter()
                .rev()
                .copied()
                .find(|ip| !self.trusted_proxies.trusts(*ip))
                .unwrap_or(first),
        }))
    }
}

/// The trace id of the request's `traceparent` header: `None` without one; an error for a
/// value that is not a valid W3C `traceparent`, or for more than one (the W3C rule: a
/// receiver cannot tell which to continue).
fn trace_id(values: &[&[u8]]) -> Result<Option<TraceId>, DropReason> {
    let value = match values {
        [] => return Ok(None),
        [value] => *value,
        _ => {
            return Err(DropReason::MalformedTraceparent(
                TraceContextError::Traceparent("the header was sent more than once"),
            ));
        }
    };
    let Some(text) = sanitize_header_value(value)? else {
        return Ok(None);
    };
    TraceParent::parse(text)
        .map(|tp| Some(tp.trace_id))
        .map_err(DropReason::MalformedTraceparent)
}

/// Parses one `x-forwarded-for` entry: an address, optionally with a port (`1.2.3.4:80`,
/// `[::1]:80`).
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn extract(h: &ContextHeaders, xff: &[&'static str], peer: Option<&str>) -> ExtractedHeaders {
        let values: Vec<&[u8]> = xff.iter().map(|v| v.as_bytes()).collect();
        h.extract(
            |name| {
                if name == FORWARDED_FOR_HEADER {
                    values.clone()
                } else {
                    vec![]
                }
            },
            peer.map(ip),
            None,
        )
    }

    #[test]
    fn forwarded_for_is_ignored_unless_trusted() {
        let h = ContextHeaders::default();
        let got = extract(&h, &["203.0.113.9"], Some("10.0.0.2"));
        assert_eq!(got.remote_ip, Some(ip("10.0.0.2")));
        assert!(got.dropped.is_empty());
    }

    #[test]
    fn hops_pick_the_nth_entry_from_the_right() {
        let one = ContextHeaders::default().with_trusted_proxies(TrustedProxies::Hops(1));
        let two = ContextHeaders::default().with_trusted_proxies(TrustedProxies::Hops(2));
        let xff = ["198.51.100.1, 203.0.113.9", "10.0.0.7"];
        assert_eq!(extract(&one, &xff, None).remote_ip, Some(ip("10.0.0.7")));
        assert_eq!(extract(&two, &xff, None).remote_ip, Some(ip("203.0.113.9")));
        let many = ContextHeaders::default().with_trusted_proxies(TrustedProxies::Hops(9));
        assert_eq!(
            extract(&many, &xff, None).remote_ip,
            Some(ip("198.51.100.1"))
        );
    }

    #[test]
    fn networks_trust_only_known_peers_and_skip_known_hops() {
        let h = ContextHeaders::default()
            .with_trusted_proxies(TrustedProxies::networks(["10.0.0.0/8", "::1"]).unwrap());
        let xff = ["198.51.100.1, 203.0.113.9:4711, 10.1.2.3"];
        assert_eq!(
            extract(&h, &xff, Some("10.0.0.2")).remote_ip,
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            extract(&h, &xff, Some("192.0.2.1")).remote_ip,
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            extract(&h, &["[2001:db8::1]:80"], Some("::1")).remote_ip,
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            extract(&h, &["10.9.9.9"], Some("::ffff:10.0.0.2")).remote_ip,
            Some(ip("10.9.9.9"))
        );
    }

    #[test]
    fn malformed_forwarded_for_falls_back_to_the_peer() {
        let h = ContextHeaders::default().with_trusted_proxies(TrustedProxies::Hops(1));
        let got = extract(&h, &["not-an-ip"], Some("10.0.0.2"));
        assert_eq!(got.remote_ip, Some(ip("10.0.0.2")));
        assert_eq!(got.dropped[0].reason, DropReason::NotAnIpAddress);
    }

    fn extract_traceparent(values: &[&'static str]) -> ExtractedHeaders {
        let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        ContextHeaders::default().extract(
            |name| {
                if name == TRACEPARENT_HEADER {
                    values.clone()
                } else {
                    vec![]
                }
            },
            None,
            None,
        )
    }

    #[test]
    fn traceparent_gives_the_trace_id_or_is_dropped() {
        const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let got = extract_traceparent(&[VALID]);
        assert_eq!(
            got.trace_id.map(|t| t.to_string()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert!(got.dropped.is_empty());
        assert_eq!(got.to_context(None).trace_id, got.trace_id);
        assert_eq!(extract_traceparent(&[]).trace_id, None);
        assert_eq!(extract_traceparent(&[""]).dropped, []);

        let malformed =
            extract_traceparent(&["00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"]);
        assert_eq!(malformed.trace_id, None);
        assert_eq!(malformed.dropped.len(), 1);
        assert_eq!(malformed.dropped[0].header, "traceparent");
        assert_eq!(
            malformed.dropped[0].reason,
            DropReason::MalformedTraceparent(TraceContextError::Traceparent(
                "trace id is not 32 lowercase hex digits"
            ))
        );
        let twice = extract_traceparent(&[VALID, VALID]);
        assert_eq!(twice.trace_id, None);
        assert!(
            twice.dropped[0]
                .reason
                .to_string()
                .starts_with("invalid traceparent: the header was sent more than once;"),
            "{}",
            twice.dropped[0].reason
        );
        let control = extract_traceparent(&["00-4bf9\t"]);
        assert_eq!(control.dropped[0].reason, DropReason::ControlCharacter);
        let short = extract_traceparent(&["00-4bf9"]);
        assert_eq!(
            short.dropped[0].reason,
            DropReason::MalformedTraceparent(TraceContextError::Traceparent("too short"))
        );
    }

    #[test]
    fn values_are_checked() {
        assert_eq!(sanitize_header_value(b""), Ok(None));
        assert_eq!(sanitize_header_value(b"\xff"), Err(DropReason::NotUtf8));
        assert_eq!(
            sanitize_header_value(b"a\x7fb"),
            Err(DropReason::ControlCharacter)
        );
        assert_eq!(
            sanitize_header_value("é".repeat(128).as_bytes()),
            Ok(Some("é".repeat(128).as_str()))
        );
        assert_eq!(
            sanitize_header_value(&[b'x'; 257]),
            Err(DropReason::TooLong(257))
        );
    }

    #[test]
    fn header_names_and_networks_are_validated() {
        assert_eq!(
            ContextHeaders::default()
                .request_id_header("X-Trace-Id")
                .unwrap()
                .request_id_name(),
            "x-trace-id"
        );
        assert!(
            ContextHeaders::default()
                .request_id_header("bad name")
                .is_err()
        );
        assert!(ContextHeaders::default().correlation_id_header("").is_err());
    }

    #[test]
    fn trusted_networks_parse_cidr_and_bare_addresses() {
        let nets = |list: &[&str]| match TrustedProxies::networks(list) {
            Ok(TrustedProxies::Networks(nets)) => nets,
            other => panic!("{list:?}: {other:?}"),
        };
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(
            nets(&[" 10.0.0.0/8 ", "127.0.0.1", "::1", "2001:db8::/32"]),
            [
                net("10.0.0.0/8"),
                net("127.0.0.1/32"),
                net("::1/128"),
                net("2001:db8::/32")
            ]
        );
        // IPv4-mapped networks and addresses become IPv4, the form peers are compared in.
        assert_eq!(
            nets(&["::ffff:10.0.0.0/104", "::ffff:192.0.2.1"]),
            [net("10.0.0.0/8"), net("192.0.2.1/32")]
        );
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/", "/8", "::/129", ""] {
            assert_eq!(
                TrustedProxies::networks([bad]),
                Err(HeaderConfigError::InvalidNetwork(bad.trim().to_owned())),
                "{bad:?}"
            );
        }
        let e = TrustedProxies::networks(["10.0.0.0/40"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid trusted proxy \"10.0.0.0/40\": use an IP address or a CIDR network such as \"10.0.0.0/8\""
        );
        let lan = TrustedProxies::networks(["192.168.0.0/23"]).unwrap();
        assert!(lan.trusts(ip("192.168.1.200")));
        assert!(lan.trusts(ip("::ffff:192.168.1.200")));
        assert!(!lan.trusts(ip("192.168.2.1")));
        assert!(!lan.trusts(ip("::1")));
    }
}
