//! W3C Trace Context: the `traceparent` header and the trace id stored with each audited
//! transaction (`audit_transactions.trace_id`), so that an audit row links to its trace.
//!
//! Parsing follows the W3C Trace Context recommendation strictly: four dash-separated fields
//! `version-traceid-parentid-flags` of lowercase hex (2, 32, 16 and 2 digits), version `ff`
//! invalid, neither id all zeros. A version `00` header is exactly 55 characters; a later
//! version may append fields after a `-`, which are ignored.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The W3C trace context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Length of a version `00` `traceparent` value.
const TRACEPARENT_LEN: usize = 55;

/// Why a trace id or a `traceparent` value was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceContextError {
    /// Not a trace id (32 lowercase hex digits, not all zeros).
    #[error(
        "invalid trace id: {0}; use 32 lowercase hex digits, not all zeros, such as 4bf92f3577b34da6a3ce929d0e0e4736"
    )]
    TraceId(&'static str),
    /// Not a `traceparent` value.
    #[error(
        "invalid traceparent: {0}; expected version-traceid-parentid-flags in lowercase hex, such as 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    )]
    Traceparent(&'static str),
}

/// A W3C trace id: 16 bytes, never all zeros, written as 32 lowercase hex digits.
///
/// ```
/// use threadline_core::TraceId;
/// let id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse()?;
/// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!("4BF92F3577B34DA6A3CE929D0E0E4736".parse::<TraceId>().is_err());
/// assert!("0".repeat(32).parse::<TraceId>().is_err());
/// # Ok::<(), threadline_core::TraceContextError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

impl TraceId {
    /// The id from its 16 bytes (big-endian, as OpenTelemetry's `TraceId::to_bytes` gives
    /// them); `None` for all zeros, the W3C "invalid" id.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        let value = u128::from_be_bytes(bytes);
        (value != 0).then_some(Self(value))
    }

    /// The id's 16 bytes, big-endian.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl FromStr for TraceId {
    type Err = TraceContextError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value =
            lower_hex(s, 32).ok_or(TraceContextError::TraceId("not 32 lowercase hex digits"))?;
        if value == 0 {
            return Err(TraceContextError::TraceId("all zeros"));
        }
        Ok(Self(value))
    }
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A parsed `traceparent` header value.
///
/// Parsing is strict: four dash-separated fields `version-traceid-parentid-flags` of
/// lowercase hex (2, 32, 16 and 2 digits), version `ff` invalid, neither id all zeros. A
/// version `00` value is exactly 55 characters; a later version may append fields after a
/// `-`, which are ignored.
///
/// ```
/// use threadline_core::TraceParent;
/// let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")?;
/// assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!((tp.parent_id, tp.flags), (0x00f0_67aa_0ba9_02b7, 0x01));
/// assert!(TraceParent::parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_err());
/// # Ok::<(), threadline_core::TraceContextError>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The format version (`00` today).
    pub version: u8,
    /// The trace id.
    pub trace_id: TraceId,
    /// The caller's span id (never zero).
    pub parent_id: u64,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value strictly (see the rules above).
    pub fn parse(value: &str) -> Result<Self, TraceContextError> {
        let bad = TraceContextError::Traceparent;
        let bytes = value.as_bytes();
        if bytes.len() < TRACEPARENT_LEN {
            return Err(bad("too short"));
        }
        if [2, 35, 52].iter().any(|&i| bytes[i] != b'-') {
            return Err(bad("fields not separated by '-' at the expected places"));
        }
        let field = |range: std::ops::Range<usize>, width, name| {
            value
                .get(range)
                .and_then(|text| lower_hex(text, width))
                .ok_or(bad(name))
        };
        let version = field(0..2, 2, "version is not 2 lowercase hex digits")?;
        if version == 0xff {
            return Err(bad("version ff is invalid"));
        }
        if version == 0 && bytes.len() != TRACEPARENT_LEN {
            return Err(bad("a version 00 value is exactly 55 characters"));
        }
        if bytes.len() > TRACEPARENT_LEN && bytes[TRACEPARENT_LEN] != b'-' {
            return Err(bad("fields not separated by '-' at the expected places"));
        }
        let trace_id = field(3..35, 32, "trace id is not 32 lowercase hex digits")?;
        let parent_id = field(36..52, 16, "parent id is not 16 lowercase hex digits")?;
        let flags = field(53..55, 2, "flags are not 2 lowercase hex digits")?;
        if trace_id == 0 {
            return Err(bad("trace id is all zeros"));
        }
        if parent_id == 0 {
            return Err(bad("parent id is all zeros"));
        }
        Ok(Self {
            version: u8::try_from(version).unwrap_or(u8::MAX),
            trace_id: TraceId(trace_id),
            parent_id: u64::try_from(parent_id).unwrap_or(u64::MAX),
            flags: u8::try_from(flags).unwrap_or(u8::MAX),
        })
    }
}

/// The trace id of OpenTelemetry's current span (`opentelemetry::Context::current()`), or
/// `None` when the current context holds no valid span context (no span, or a no-op tracer).
///
/// The web integrations call it with their `opentelemetry` feature, where it takes precedence
/// over the `traceparent` header: the current span is the trace the application itself
/// records and exports.
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub fn current_span_trace_id() -> Option<TraceId> {
    use opentelemetry::trace::TraceContextExt as _;
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        TraceId::from_bytes(span_context.trace_id().to_bytes())
    } else {
        None
    }
}

/// `text` as a number when it is exactly `width` lowercase hex digits (`width` <= 32).
fn lower_hex(text: &str, width: usize) -> Option<u128> {
    let valid = text.len() == width
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if valid {
        u128::from_str_radix(text, 16).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn reason(value: &str) -> &'static str {
        match TraceParent::parse(value) {
            Err(TraceContextError::Traceparent(reason)) => reason,
            other => panic!("{value:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn a_valid_header_gives_its_fields() {
        let tp = TraceParent::parse(VALID).unwrap();
        assert_eq!(tp.version, 0);
        assert_eq!(tp.trace_id.to_string(), TRACE);
        assert_eq!(tp.parent_id, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(tp.flags, 1);
        let unsampled = TraceParent::parse(&VALID.replace("-01", "-00")).unwrap();
        assert_eq!(unsampled.flags, 0);
    }

    #[test]
    fn later_versions_may_append_fields() {
        let v1 = format!("01{}-future-field", &VALID[2..]);
        assert_eq!(TraceParent::parse(&v1).unwrap().version, 1);
        assert_eq!(
            TraceParent::parse(&format!("cc{}", &VALID[2..]))
                .unwrap()
                .version,
            0xcc
        );
        assert_eq!(
            reason(&format!("01{}x", &VALID[2..])),
            "fields not separated by '-' at the expected places"
        );
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        assert_eq!(reason(""), "too short");
        assert_eq!(reason(&VALID[..54]), "too short");
        assert_eq!(
            reason(&format!("{VALID}-00")),
            "a version 00 value is exactly 55 characters"
        );
        assert_eq!(
            reason(&format!("ff{}", &VALID[2..])),
            "version ff is invalid"
        );
        assert_eq!(
            reason(&format!("0g{}", &VALID[2..])),
            "version is not 2 lowercase hex digits"
        );
        assert_eq!(
            reason(&VALID.replace("4bf9", "4BF9")),
            "trace id is not 32 lowercase hex digits"
        );
        assert_eq!(
            reason(&VALID.replace("00f067aa", "00F067AA")),
            "parent id is not 16 lowercase hex digits"
        );
        assert_eq!(
            reason(&VALID.replace("-01", "-0x")),
            "flags are not 2 lowercase hex digits"
        );
        assert_eq!(
            reason(&format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32))),
            "trace id is all zeros"
        );
        assert_eq!(
            reason(&format!("00-{TRACE}-{}-01", "0".repeat(16))),
            "parent id is all zeros"
        );
        assert_eq!(
            reason(&VALID.replace('-', "_")),
            "fields not separated by '-' at the expected places"
        );
        // A sign or space that u128::from_str_radix would accept is still refused.
        assert_eq!(
            reason(&VALID.replace("4bf9", "+bf9")),
            "trace id is not 32 lowercase hex digits"
        );
        // Multi-byte characters never split a field or panic.
        assert_eq!(
            reason(&VALID.replace("4b", "é")),
            "trace id is not 32 lowercase hex digits"
        );
        let e = TraceParent::parse("nope").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid traceparent: too short; expected"),
            "{e}"
        );
    }

    #[test]
    fn trace_ids_round_trip_through_text_bytes_and_serde() {
        let id: TraceId = TRACE.parse().unwrap();
        assert_eq!(TraceId::from_bytes(id.to_bytes()), Some(id));
        assert_eq!(TraceId::from_bytes([0; 16]), None);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{TRACE}\""));
        assert_eq!(serde_json::from_str::<TraceId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<TraceId>("\"xyz\"").is_err());
        assert_eq!(
            format!(
                "{:?}",
                TraceId::from_bytes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap()
            ),
            "TraceId(00000000000000000000000000000001)"
        );
        for bad in ["", &TRACE[1..], &format!("{TRACE}0"), &TRACE.to_uppercase()] {
            assert_eq!(
                bad.parse::<TraceId>(),
                Err(TraceContextError::TraceId("not 32 lowercase hex digits")),
                "{bad:?}"
            );
        }
    }
}
