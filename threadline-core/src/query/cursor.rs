//! Keyset pages: [`Page`] (what to fetch), [`PageOf`] (what came back) and the opaque,
//! tamper-checked [`Cursor`] that links them.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::QueryError;
use crate::sql::fnv1a;

/// Why a cursor was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor this library issued (bad characters or length).
    #[error(
        "not a Threadline cursor; pass back the `next` or `prev` value of a previous page unchanged"
    )]
    Malformed,
    /// The cursor was edited or corrupted (its check value does not match).
    #[error(
        "cursor failed its integrity check (edited or truncated); pass back the `next` or `prev` value unchanged"
    )]
    Tampered,
    /// The cursor was issued by another method.
    #[error(
        "this cursor was issued by {issued_by}, not {used_in}; cursors only work with the method that issued them"
    )]
    WrongMethod {
        /// The method that issued it.
        issued_by: &'static str,
        /// The method it was passed to.
        used_in: &'static str,
    },
    /// The cursor was issued for another filter (or actor).
    #[error(
        "this cursor belongs to a different filter; start again from the first page when the filter changes"
    )]
    WrongFilter,
}

/// Which way a cursor pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Rows after the position in newest-first order (older rows).
    Older = 1,
    /// Rows before the position (newer rows), for "previous page" links.
    Newer = 2,
}

/// The paged methods; a cursor only works with the one that issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PagedMethod {
    Timeline = 1,
    ActorHistory = 2,
}

impl PagedMethod {
    fn name(self) -> &'static str {
        match self {
            PagedMethod::Timeline => "timeline",
            PagedMethod::ActorHistory => "actor_history",
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(PagedMethod::Timeline),
            2 => Some(PagedMethod::ActorHistory),
            _ => None,
        }
    }
}

const VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 3 + 8 + 8 + 8;
const TOKEN_BYTES: usize = PAYLOAD_LEN + 8;
const CHECK_DOMAIN: &[u8] = b"threadline.cursor.v1\0";

/// An opaque position in a newest-first list, issued as [`PageOf::next`] or [`PageOf::prev`].
///
/// Its text form (`Display` / `FromStr`, and serde as a string) is URL-safe. It carries a
/// check value, so an edited or truncated cursor is refused with [`CursorError::Tampered`], and
/// it is bound to the method and filter that issued it. It holds only a position (a timestamp
/// and an id), never filter values, so a forged cursor can at most move within the same
/// filter's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    method: PagedMethod,
    direction: Direction,
    at_micros: i64,
    id: i64,
    scope: u64,
}

impl Cursor {
    /// True when this cursor fetches newer rows (a "previous page" link).
    pub fn is_newer(&self) -> bool {
        self.direction == Direction::Newer
    }

    fn payload(&self) -> [u8; PAYLOAD_LEN] {
        let mut out = [0u8; PAYLOAD_LEN];
        out[0] = VERSION;
        out[1] = self.method as u8;
        out[2] = self.direction as u8;
        out[3..11].copy_from_slice(&self.at_micros.to_be_bytes());
        out[11..19].copy_from_slice(&self.id.to_be_bytes());
        out[19..27].copy_from_slice(&self.scope.to_be_bytes());
        out
    }

    pub(crate) fn position(&self) -> Result<(DateTime<Utc>, i64), CursorError> {
        let at = DateTime::from_timestamp_micros(self.at_micros).ok_or(CursorError::Tampered)?;
        Ok((at, self.id))
    }

    pub(crate) fn check(&self, method: PagedMethod, scope: u64) -> Result<(), CursorError> {
        if self.method != method {
            return Err(CursorError::WrongMethod {
                issued_by: self.method.name(),
                used_in: method.name(),
            });
        }
        if self.scope != scope {
            return Err(CursorError::WrongFilter);
        }
        Ok(())
    }
}

fn check_value(payload: &[u8]) -> u64 {
    let mut bytes = CHECK_DOMAIN.to_vec();
    bytes.extend_from_slice(payload);
    fnv1a(&bytes)
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let payload = self.payload();
        let mut bytes = payload.to_vec();
        bytes.extend_from_slice(&check_value(&payload).to_be_bytes());
        f.write_str(&URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // base64url without padding; the engine refuses non-zero unused bits in the last
        // character, so each cursor has exactly one text.
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| CursorError::Malformed)?;
        if bytes.len() != TOKEN_BYTES {
            return Err(CursorError::Malformed);
        }
        let (payload, check) = bytes.split_at(PAYLOAD_LEN);
        let be = |b: &[u8]| -> [u8; 8] { b.try_into().unwrap_or_default() };
        if u64::from_be_bytes(be(check)) != check_value(payload) {
            return Err(CursorError::Tampered);
        }
        let method = PagedMethod::from_byte(payload[1]);
        let direction = match payload[2] {
            1 => Some(Direction::Older),
            2 => Some(Direction::Newer),
            _ => None,
        };
        match (payload[0], method, direction) {
            (VERSION, Some(method), Some(direction)) => Ok(Cursor {
                method,
                direction,
                at_micros: i64::from_be_bytes(be(&payload[3..11])),
                id: i64::from_be_bytes(be(&payload[11..19])),
                scope: u64::from_be_bytes(be(&payload[19..27])),
            }),
            _ => Err(CursorError::Tampered),
        }
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which page to fetch: a size (default 100, at most 1,000) and an optional cursor.
///
/// ```
/// use threadline_core::query::Page;
/// let first = Page::first().with_size(50);
/// assert_eq!(first.size(), 50);
/// // In a web handler, from query parameters:
/// let page = Page::parse(Some(20), None)?;
/// assert!(page.cursor().is_none());
/// assert!(Page::parse(Some(5000), None).is_err());
/// # Ok::<(), threadline_core::query::QueryError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    size: Option<u32>,
    cursor: Option<Cursor>,
}

impl Page {
    /// Page size when none is given.
    pub const DEFAULT_SIZE: u32 = 100;
    /// Largest accepted page size.
    pub const MAX_SIZE: u32 = 1000;

    /// The first (newest) page, of the default size.
    pub fn first() -> Self {
        Self::default()
    }

    /// The page a cursor points to (from [`PageOf::next`] or [`PageOf::prev`]).
    pub fn at(cursor: Cursor) -> Self {
        Self {
            size: None,
            cursor: Some(cursor),
        }
    }

    /// Sets the page size (checked when the query is built: 1 to [`Page::MAX_SIZE`]).
    #[must_use]
    pub fn with_size(mut self, size: u32) -> Self {
        self.size = Some(size);
        self
    }

    /// Builds a page from untrusted input (query parameters), checking both parts now.
    pub fn parse(size: Option<u32>, cursor: Option<&str>) -> Result<Self, QueryError> {
        let page = Self {
            size,
            cursor: cursor.map(str::parse).transpose()?,
        };
        page.checked_size()?;
        Ok(page)
    }

    /// The page size.
    pub fn size(&self) -> u32 {
        self.size.unwrap_or(Self::DEFAULT_SIZE)
    }

    /// The cursor, if any.
    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    fn checked_size(&self) -> Result<u32, QueryError> {
        match self.size() {
            size @ 1..=Self::MAX_SIZE => Ok(size),
            size => Err(QueryError::PageSize { size }),
        }
    }

    /// Validates the page for a method and filter scope; returns what the query needs.
    pub(crate) fn plan(&self, method: PagedMethod, scope: u64) -> Result<PagePlan, QueryError> {
        let size = self.checked_size()?;
        let position = match &self.cursor {
            Some(cursor) => {
                cursor.check(method, scope)?;
                Some((cursor.position()?, cursor.direction))
            }
            None => None,
        };
        Ok(PagePlan {
            method,
            scope,
            size,
            newer: matches!(position, Some((_, Direction::Newer))),
            position: position.map(|(p, _)| p),
        })
    }
}

/// How a paged statement was built; turns the fetched rows into a [`PageOf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePlan {
    method: PagedMethod,
    scope: u64,
    size: u32,
    newer: bool,
    position: Option<(DateTime<Utc>, i64)>,
}

impl PagePlan {
    /// Rows to fetch: one more than the page size, to learn whether another page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// True when the statement reads newer rows (ascending order), for a `prev` cursor.
    pub fn reads_newer(&self) -> bool {
        self.newer
    }

    pub(crate) fn position(&self) -> Option<(DateTime<Utc>, i64)> {
        self.position
    }

    /// Builds the page from the rows the statement returned (in the statement's order).
    /// `key` gives each row's position: its timestamp and id.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> (DateTime<Utc>, i64),
    ) -> PageOf<T> {
        let size = self.size as usize;
        let more = rows.len() > size;
        rows.truncate(size);
        if self.newer {
            rows.reverse();
        }
        let cursor = |row: &T, direction| {
            let (at, id) = key(row);
            Cursor {
                method: self.method,
                direction,
                at_micros: at.timestamp_micros(),
                id,
                scope: self.scope,
            }
        };
        let (older_exist, newer_exist) = if self.newer {
            (true, more)
        } else {
            (more, self.position.is_some())
        };
        PageOf {
            next: rows
                .last()
                .filter(|_| older_exist)
                .map(|r| cursor(r, Direction::Older)),
            prev: rows
                .first()
                .filter(|_| newer_exist)
                .map(|r| cursor(r, Direction::Newer)),
            items: rows,
        }
    }
}

/// One page of results, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageOf<T> {
    /// The rows, newest first.
    pub items: Vec<T>,
    /// Cursor for the next page (older rows); `None` on the last page.
    pub next: Option<Cursor>,
    /// Cursor for the previous page (newer rows); `None` on the first page.
    pub prev: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            method: PagedMethod::Timeline,
            direction: Direction::Older,
            at_micros: 1_790_000_000_123_456,
            id: 42,
            scope: 7,
        }
    }

    /// A cursor issued before the base64 crate encoded them (by the hand-written encoder),
    /// for [`cursor()`]: the text form must not change, or links in the wild would break.
    const ISSUED_TEXT: &str = "AQEBAAZb_tonwkAAAAAAAAAAKgAAAAAAAAAHbkJtwHnFAPw";

    #[test]
    fn cursors_issued_by_earlier_versions_still_parse() {
        assert_eq!(cursor().to_string(), ISSUED_TEXT);
        assert_eq!(ISSUED_TEXT.parse::<Cursor>(), Ok(cursor()));
        let newer = Cursor {
            direction: Direction::Newer,
            method: PagedMethod::ActorHistory,
            at_micros: -1,
            id: i64::MAX,
            scope: u64::MAX,
        };
        assert_eq!(
            newer.to_string(),
            "AQIC__________9_____________________OmZh0FG0-q8"
        );
        assert_eq!(newer.to_string().parse::<Cursor>(), Ok(newer));
    }

    #[test]
    fn cursor_text_is_unpadded_base64url_with_one_spelling() {
        let text = cursor().to_string();
        assert_eq!(text.len(), 47);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        // Padding, the standard alphabet and non-zero unused bits are refused.
        assert_eq!(
            format!("{text}=").parse::<Cursor>(),
            Err(CursorError::Malformed)
        );
        let standard = text.replace('-', "+").replace('_', "/");
        assert_ne!(standard, text);
        assert_eq!(standard.parse::<Cursor>(), Err(CursorError::Malformed));
        let mut other_bits = text.clone();
        other_bits.pop();
        other_bits.push('V');
        assert_eq!(other_bits.parse::<Cursor>(), Err(CursorError::Malformed));
    }

    #[test]
    fn cursors_round_trip_and_detect_every_single_character_edit() {
        let text = cursor().to_string();
        assert_eq!(text.parse::<Cursor>(), Ok(cursor()));
        for i in 0..text.len() {
            for replacement in ['A', 'z', '0', '_'] {
                let mut edited = text.clone().into_bytes();
                if edited[i] == replacement as u8 {
                    continue;
                }
                edited[i] = replacement as u8;
                let edited = String::from_utf8(edited).unwrap();
                assert!(
                    edited.parse::<Cursor>().is_err(),
                    "edit at {i} to {replacement} was accepted"
                );
            }
        }
        assert_eq!("".parse::<Cursor>(), Err(CursorError::Malformed));
        assert_eq!(
            text[..text.len() - 4].parse::<Cursor>(),
            Err(CursorError::Malformed)
        );
        assert_eq!(
            "not a cursor!".parse::<Cursor>(),
            Err(CursorError::Malformed)
        );
    }

    #[test]
    fn cursors_are_bound_to_method_and_scope() {
        let c = cursor();
        assert_eq!(c.check(PagedMethod::Timeline, 7), Ok(()));
        assert_eq!(
            c.check(PagedMethod::Timeline, 8),
            Err(CursorError::WrongFilter)
        );
        assert!(matches!(
            c.check(PagedMethod::ActorHistory, 7),
            Err(CursorError::WrongMethod { .. })
        ));
    }

    #[test]
    fn page_sizes_are_checked() {
        assert_eq!(Page::first().size(), 100);
        assert!(Page::parse(Some(1), None).is_ok());
        assert!(Page::parse(Some(1000), None).is_ok());
        assert_eq!(
            Page::parse(Some(0), None),
            Err(QueryError::PageSize { size: 0 })
        );
        assert_eq!(
            Page::first().with_size(1001).plan(PagedMethod::Timeline, 0),
            Err(QueryError::PageSize { size: 1001 })
        );
        assert!(matches!(
            Page::parse(None, Some("zzz")),
            Err(QueryError::Cursor(CursorError::Malformed))
        ));
    }

    #[test]
    fn finish_sets_next_and_prev() {
        let t = |i: i64| DateTime::from_timestamp(1_000 + i, 0).unwrap();
        let key = |r: &i64| (t(*r), *r);
        let first = Page::first()
            .with_size(2)
            .plan(PagedMethod::Timeline, 1)
            .unwrap();
        let page = first.finish(vec![9, 8, 7], key);
        assert_eq!(page.items, vec![9, 8]);
        assert!(page.prev.is_none());
        let next = page.next.unwrap();
        let second = Page::at(next)
            .with_size(2)
            .plan(PagedMethod::Timeline, 1)
            .unwrap();
        assert_eq!(second.position(), Some((t(8), 8)));
        let page = second.finish(vec![7], key);
        assert_eq!(page.items, vec![7]);
        assert!(page.next.is_none());
        let prev = page.prev.unwrap();
        assert!(prev.is_newer());
        let back = Page::at(prev)
            .with_size(2)
            .plan(PagedMethod::Timeline, 1)
            .unwrap();
        assert!(back.reads_newer());
        // Newer rows come back ascending and are reversed; one extra row means more are newer.
        let page = back.finish(vec![8, 9, 10], key);
        assert_eq!(page.items, vec![9, 8]);
        assert!(page.prev.is_some() && page.next.is_some());
    }
}
