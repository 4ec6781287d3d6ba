//! Query parameters: parsed strictly, with a typed error naming the parameter.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;
use threadline_core::{ActorRef, ChangeOp, TableName};
use threadline_sqlx::{Cursor, Page, PrimaryKey, TimelineFilter};

use super::error::ExplorerError;

/// The raw parameters of one request: known names only, each at most once. Empty values
/// (as an HTML form sends for blank fields) count as absent.
#[derive(Debug, Default, Clone)]
pub(super) struct Params(Vec<(&'static str, String)>);

impl Params {
    pub(super) fn parse(raw: Option<&str>, known: &[&'static str]) -> Result<Self, ExplorerError> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let Some(&name) = known.iter().find(|k| **k == name) else {
                return Err(ExplorerError::param(
                    name,
                    format!("unknown parameter; this page takes {}", known.join(", ")),
                ));
            };
            if out.iter().any(|(n, _)| *n == name) {
                return Err(ExplorerError::param(
                    name,
                    "given more than once; give it once",
                ));
            }
            let value = value.trim();
            if !value.is_empty() {
                out.push((name, value.to_owned()));
            }
        }
        Ok(Self(out))
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn require(&self, name: &'static str) -> Result<&str, ExplorerError> {
        self.get(name)
            .ok_or_else(|| ExplorerError::param(name, "missing; this page needs it"))
    }

    /// The pairs, for links that keep the current parameters.
    pub(super) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (*n, v.as_str()))
    }

    /// The pairs except `drop`.
    pub(super) fn without<'a>(
        &'a self,
        drop: &'a [&str],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.pairs().filter(move |(n, _)| !drop.contains(n))
    }
}

/// The timeline's parameters: the filter's, then `cursor` and `size`.
pub(super) const TIMELINE_PARAMS: [&str; 9] = [
    "table",
    "actor",
    "from",
    "to",
    "op",
    "correlation_id",
    "request_id",
    "cursor",
    "size",
];

/// The parameters of the timeline's filter form.
pub(super) const FILTER_PARAMS: &[&str] = TIMELINE_PARAMS.split_at(7).0;

pub(super) fn filter(params: &Params) -> Result<TimelineFilter, ExplorerError> {
    let mut filter = TimelineFilter::new();
    if let Some(table) = params.get("table") {
        filter = filter.table(table_name(table)?);
    }
    if let Some(actor) = params.get("actor") {
        filter = filter.actor(actor_ref(actor)?);
    }
    if let Some(from) = params.get("from") {
        filter = filter.from(time("from", from)?);
    }
    if let Some(to) = params.get("to") {
        filter = filter.to(time("to", to)?);
    }
    if let Some(op) = params.get("op") {
        let op: ChangeOp = op
            .parse()
            .map_err(|e: threadline_core::UnknownOp| ExplorerError::param("op", e.to_string()))?;
        filter = filter.op(op);
    }
    if let Some(id) = params.get("correlation_id") {
        filter = filter.correlation_id(id);
    }
    if let Some(id) = params.get("request_id") {
        filter = filter.request_id(id);
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
pub(super) fn page(params: &Params, default_size: u32) -> Result<Page, ExplorerError> {
    let mut page = match params.get("cursor") {
        Some(cursor) => Page::at(
            cursor
                .parse::<Cursor>()
                .map_err(|e| ExplorerError::param("cursor", e.to_string()))?,
        ),
        None => Page::first(),
    };
    let size = match params.get("size") {
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
    fn unknown_and_repeated_parameters_are_refused_and_blanks_ignored() {
        let known = &["table", "op"];
        let params = Params::parse(Some("table=posts&op="), known).unwrap();
        assert_eq!(params.get("table"), Some("posts"));
        assert_eq!(params.get("op"), None);
        let e = Params::parse(Some("tabel=posts"), known).unwrap_err();
        assert!(e.to_string().contains("`tabel`: unknown parameter"), "{e}");
        let e = Params::parse(Some("op=insert&op=update"), known).unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
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
