//! Query parameters: each page's parameters are a struct deserialized with serde (unknown
//! names refused with `deny_unknown_fields`), and every refusal is an [`ExplorerError`] that
//! names the parameter, so that the page can say what to fix.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde::de::value::MapDeserializer;
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde_json::Value;
use threadline_core::{ActorRef, ChangeOp, TableName};
use threadline_sqlx::{Cursor, Page, PrimaryKey, TimelineFilter};

use super::error::ExplorerError;

/// One request's parameters: `query`, the page's typed parameters, and the pairs as given, in
/// order, for links that keep them. Each name may appear once; empty values (as an HTML form
/// sends for blank fields) count as absent.
#[derive(Debug, Default, Clone)]
pub(super) struct Params<Q> {
    pub(super) query: Q,
    pairs: Vec<(String, String)>,
}

impl<Q: DeserializeOwned> Params<Q> {
    /// Parses a raw query string (`RawQuery`) into the page's parameters.
    pub(super) fn parse(raw: Option<&str>) -> Result<Self, ExplorerError> {
        let given: Vec<(String, String)> =
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(name, value)| (name.into_owned(), value.trim().to_owned()))
                .collect();
        let fields = given.iter().map(|(name, value)| {
            (
                name.as_str(),
                Field {
                    name,
                    value: value.as_str(),
                },
            )
        });
        let query = Q::deserialize(MapDeserializer::new(fields)).map_err(ExplorerError::from)?;
        let pairs = given.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        Ok(Self { query, pairs })
    }
}

impl<Q> Params<Q> {
    /// The given pairs, for links that keep the current parameters.
    pub(super) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The pairs except `drop`.
    pub(super) fn without<'a>(
        &'a self,
        drop: &'a [&str],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.pairs().filter(move |(n, _)| !drop.contains(n))
    }
}

/// The timeline's parameters (page and JSON): the filter's, then `cursor` and `size`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TimelineQuery {
    pub(super) table: Option<String>,
    pub(super) actor: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) op: Option<String>,
    pub(super) correlation_id: Option<String>,
    pub(super) request_id: Option<String>,
    pub(super) trace_id: Option<String>,
    pub(super) cursor: Option<String>,
    pub(super) size: Option<String>,
}

impl TimelineQuery {
    pub(super) fn filter(&self) -> FilterFields<'_> {
        FilterFields {
            table: self.table.as_deref(),
            actor: self.actor.as_deref(),
            from: self.from.as_deref(),
            to: self.to.as_deref(),
            op: self.op.as_deref(),
            correlation_id: self.correlation_id.as_deref(),
            request_id: self.request_id.as_deref(),
            trace_id: self.trace_id.as_deref(),
        }
    }
}

/// The export's parameters: the timeline filter's, and `format` (`csv` or `ndjson`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    pub(super) table: Option<String>,
    pub(super) actor: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) op: Option<String>,
    pub(super) correlation_id: Option<String>,
    pub(super) request_id: Option<String>,
    pub(super) trace_id: Option<String>,
    pub(super) format: Option<String>,
}

impl ExportQuery {
    pub(super) fn filter(&self) -> FilterFields<'_> {
        FilterFields {
            table: self.table.as_deref(),
            actor: self.actor.as_deref(),
            from: self.from.as_deref(),
            to: self.to.as_deref(),
            op: self.op.as_deref(),
            correlation_id: self.correlation_id.as_deref(),
            request_id: self.request_id.as_deref(),
            trace_id: self.trace_id.as_deref(),
        }
    }
}

/// A row's history: `table` and `pk` (required), and `at` for its state at that time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RowQuery {
    pub(super) table: String,
    pub(super) pk: String,
    pub(super) at: Option<String>,
}

/// An actor's transactions: `actor` (required), `cursor` and `size`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActorQuery {
    pub(super) actor: String,
    pub(super) cursor: Option<String>,
    pub(super) size: Option<String>,
}

/// A page that takes no parameters (a transaction).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoQuery {}

/// The timeline filter's parameters, as given (shared by the timeline and the export).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FilterFields<'a> {
    table: Option<&'a str>,
    actor: Option<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    op: Option<&'a str>,
    correlation_id: Option<&'a str>,
    request_id: Option<&'a str>,
    trace_id: Option<&'a str>,
}

impl FilterFields<'_> {
    /// The filter's parameter names, in form order.
    pub(super) const NAMES: [&'static str; 8] = [
        "table",
        "actor",
        "from",
        "to",
        "op",
        "correlation_id",
        "request_id",
        "trace_id",
    ];
}

/// One parameter's value, deserialized for the field of the same name. An empty value reads
/// as `None` for an optional field and as missing for a required one; other errors are
/// tagged with the parameter's name.
struct Field<'a> {
    name: &'a str,
    value: &'a str,
}

impl<'de> IntoDeserializer<'de, ParamError> for Field<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Field<'de> {
    type Error = ParamError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        if self.value.is_empty() {
            return Err(ParamError::named(self.name, MISSING));
        }
        visitor
            .visit_borrowed_str(self.value)
            .map_err(|e: ParamError| e.for_param(self.name))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ParamError> {
        if self.value.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

const MISSING: &str = "missing; this page needs it";

/// A refusal while deserializing; becomes [`ExplorerError::Param`].
#[derive(Debug)]
struct ParamError {
    param: Option<String>,
    reason: String,
}

impl ParamError {
    fn named(param: &str, reason: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            reason: reason.into(),
        }
    }

    fn for_param(self, param: &str) -> Self {
        Self {
            param: self.param.or_else(|| Some(param.to_owned())),
            ..self
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(param) => write!(f, "`{param}`: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for ParamError {}

impl de::Error for ParamError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            param: None,
            reason: msg.to_string(),
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let takes = if expected.is_empty() {
            "this page takes no parameters".to_owned()
        } else {
            format!("this page takes {}", expected.join(", "))
        };
        Self::named(field, format!("unknown parameter; {takes}"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::named(field, "given more than once; give it once")
    }

    fn missing_field(field: &'static str) -> Self {
        Self::named(field, MISSING)
    }
}

impl From<ParamError> for ExplorerError {
    fn from(e: ParamError) -> Self {
        // Every error above names its parameter; `query` stands for the whole string otherwise.
        ExplorerError::param(e.param.unwrap_or_else(|| "query".to_owned()), e.reason)
    }
}

pub(super) fn filter(params: FilterFields<'_>) -> Result<TimelineFilter, ExplorerError> {
    let mut filter = TimelineFilter::new();
    if let Some(table) = params.table {
        filter = filter.table(table_name(table)?);
    }
    if let Some(actor) = params.actor {
        filter = filter.actor(actor_ref(actor)?);
    }
    if let Some(from) = params.from {
        filter = filter.from(time("from", from)?);
    }
    if let Some(to) = params.to {
        filter = filter.to(time("to", to)?);
    }
    if let Some(op) = params.op {
        let op: ChangeOp = op
            .parse()
            .map_err(|e: threadline_core::UnknownOp| ExplorerError::param("op", e.to_string()))?;
        filter = filter.op(op);
    }
    if let Some(id) = params.correlation_id {
        filter = filter.correlation_id(id);
    }
    if let Some(id) = params.request_id {
        filter = filter.request_id(id);
    }
    if let Some(id) = params.trace_id {
        let id = id
            .parse()
            .map_err(|e: threadline_core::TraceContextError| {
                ExplorerError::param("trace_id", e.to_string())
            })?;
        filter = filter.trace_id(id);
    }
    filter.validate().map_err(|e| match e {
        threadline_sqlx::QueryError::Filter { field, reason } => {
            ExplorerError::param(field, reason)
        }
        other => ExplorerError::Threadline(other.into()),
    })?;
    Ok(filter)
}

/// `cursor` and `size` (default `default_size`).
pub(super) fn page(
    cursor: Option<&str>,
    size: Option<&str>,
    default_size: u32,
) -> Result<Page, ExplorerError> {
    let mut page = match cursor {
        Some(cursor) => Page::at(
            cursor
                .parse::<Cursor>()
                .map_err(|e| ExplorerError::param("cursor", e.to_string()))?,
        ),
        None => Page::first(),
    };
    let size = match size {
        None => default_size,
        Some(size) => match size.parse::<u32>() {
            Ok(n @ 1..=Page::MAX_SIZE) => n,
            _ => {
                return Err(ExplorerError::param(
                    "size",
                    format!(
                        "{size:?} is not a page size; use a whole number from 1 to {}",
                        Page::MAX_SIZE
                    ),
                ));
            }
        },
    };
    page = page.with_size(size);
    Ok(page)
}

pub(super) fn table_name(value: &str) -> Result<TableName, ExplorerError> {
    value.parse().map_err(|e: threadline_core::IdentError| {
        ExplorerError::param("table", format!("{e}; write `table` or `schema.table`"))
    })
}

pub(super) fn actor_ref(value: &str) -> Result<ActorRef, ExplorerError> {
    ActorRef::parse_short(value).map_err(|e| {
        ExplorerError::param(
            "actor",
            format!("{e}; write kind:id, e.g. user:42 or admin:alice, or `anonymous`"),
        )
    })
}

/// A primary key from the URL: a JSON object (`{"id": 42}`, for composite keys) when it
/// starts with `{`, else the scalar as text (an integer key matches its decimal text).
pub(super) fn primary_key(value: &str) -> Result<PrimaryKey, ExplorerError> {
    if value.starts_with('{') {
        match serde_json::from_str::<Value>(value) {
            Ok(object @ Value::Object(_)) => Ok(object.into()),
            _ => Err(ExplorerError::param(
                "pk",
                "starts with `{` but is not a JSON object; write e.g. {\"tenant_id\": 7, \"sku\": \"A-1\"}",
            )),
        }
    } else {
        Ok(value.into())
    }
}

/// The `pk` parameter that names a stored key: the bare value for a one-column key, else the
/// key object as JSON.
pub(super) fn pk_param(table_pk: &Value) -> String {
    if let Some(object) = table_pk.as_object()
        && object.len() == 1
    {
        match object.values().next() {
            Some(Value::Number(n)) => return n.to_string(),
            Some(Value::String(s)) if !s.starts_with('{') && s.trim() == s && !s.is_empty() => {
                return s.clone();
            }
            _ => {}
        }
    }
    table_pk.to_string()
}

/// A time: RFC 3339 (`2026-11-26T12:00:00Z`, `…+01:00`), or without an offset (as an HTML
/// `datetime-local` field sends it, `2026-11-26T12:00` or with seconds), read as UTC, or a
/// bare date (midnight UTC).
pub(super) fn time(param: &'static str, value: &str) -> Result<DateTime<Utc>, ExplorerError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(ExplorerError::param(
        param,
        format!(
            "{value:?} is not a time; write 2026-11-26T14:30:00Z, 2026-11-26T14:30 (UTC) or 2026-11-26"
        ),
    ))
}

/// A time as a parameter value, to the microsecond (`2026-11-26T12:00:23.800547Z`): what
/// links built from a change carry, so "as of" that time includes the change.
pub(super) fn time_param(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The value for a `datetime-local` field (UTC, milliseconds: the field's finest step).
pub(super) fn time_field(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// A transaction id from the path.
pub(super) fn transaction_id(value: &str) -> Result<i64, ExplorerError> {
    match value.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ExplorerError::param(
            "id",
            format!("{value:?} is not a transaction id; ids are positive whole numbers"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_repeated_and_missing_parameters_are_refused_and_blanks_ignored() {
        let message = |raw: &str| match Params::<RowQuery>::parse(Some(raw)) {
            Ok(p) => panic!("{raw} parsed: {:?}", p.query),
            Err(e) => e.to_string(),
        };
        let params = Params::<RowQuery>::parse(Some("table=posts&pk=+1+&at=")).unwrap();
        assert_eq!(
            (params.query.table.as_str(), params.query.pk.as_str()),
            ("posts", "1")
        );
        assert_eq!(params.query.at, None);
        assert_eq!(
            params.pairs().collect::<Vec<_>>(),
            [("table", "posts"), ("pk", "1")]
        );
        assert_eq!(
            message("tabel=posts&pk=1"),
            "invalid parameter `tabel`: unknown parameter; this page takes table, pk, at"
        );
        assert_eq!(
            message("table=a&table=b&pk=1"),
            "invalid parameter `table`: given more than once; give it once"
        );
        assert_eq!(
            message("table=posts&at=&at=2026-01-01&pk=1"),
            "invalid parameter `at`: given more than once; give it once"
        );
        assert_eq!(
            message("table=posts"),
            "invalid parameter `pk`: missing; this page needs it"
        );
        assert_eq!(
            message("table=posts&pk=+"),
            "invalid parameter `pk`: missing; this page needs it"
        );
        let e = Params::<NoQuery>::parse(Some("x=1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid parameter `x`: unknown parameter; this page takes no parameters"
        );
        assert!(Params::<NoQuery>::parse(None).is_ok());
        let timeline = Params::<TimelineQuery>::parse(Some("op=&table=posts&size=5")).unwrap();
        assert_eq!(timeline.query.op, None);
        assert_eq!(timeline.query.size.as_deref(), Some("5"));
        assert_eq!(
            timeline.without(&["size"]).collect::<Vec<_>>(),
            [("table", "posts")]
        );
    }

    #[test]
    fn times_accept_rfc3339_local_fields_and_dates() {
        let utc = |s: &str| time("from", s).unwrap().to_rfc3339();
        assert_eq!(
            utc("2026-11-26T12:00:00+01:00"),
            "2026-11-26T11:00:00+00:00"
        );
        assert_eq!(utc("2026-11-26T12:00"), "2026-11-26T12:00:00+00:00");
        assert_eq!(
            utc("2026-11-26T12:00:05.5"),
            "2026-11-26T12:00:05.500+00:00"
        );
        assert_eq!(utc("2026-11-26"), "2026-11-26T00:00:00+00:00");
        assert!(time("from", "yesterday").is_err());
        // Microseconds, as captured, are kept in every form, and links write them back.
        let micros = |s: &str| time_param(time("at", s).unwrap());
        assert_eq!(
            micros("2026-11-26T12:00:23.800547Z"),
            "2026-11-26T12:00:23.800547Z"
        );
        assert_eq!(
            micros("2026-11-26T13:00:23.800547+01:00"),
            "2026-11-26T12:00:23.800547Z"
        );
        assert_eq!(
            micros("2026-11-26T12:00:23.800547"),
            "2026-11-26T12:00:23.800547Z"
        );
        assert_eq!(
            micros("2026-11-26 12:00:23.800547"),
            "2026-11-26T12:00:23.800547Z"
        );
    }

    #[test]
    fn pk_params_round_trip_through_primary_key() {
        use serde_json::json;
        assert_eq!(pk_param(&json!({"id": 42})), "42");
        assert_eq!(pk_param(&json!({"id": "abc"})), "abc");
        assert_eq!(pk_param(&json!({"id": "{x"})), r#"{"id":"{x"}"#);
        assert_eq!(pk_param(&json!({"a": 1, "b": "x"})), r#"{"a":1,"b":"x"}"#);
        assert_eq!(primary_key("42").unwrap(), PrimaryKey::from("42"));
        assert_eq!(
            primary_key(r#"{"a":1}"#).unwrap(),
            PrimaryKey::from(json!({"a": 1}))
        );
        assert!(primary_key("{not json").is_err());
    }
}
