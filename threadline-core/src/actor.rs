//! Who made a change: the [`ActorRef`] value and its JSON wire format.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest accepted actor id, in bytes.
pub const MAX_ACTOR_ID_BYTES: usize = 256;

/// The kind of actor behind a change.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActorType {
    /// An end user of the application.
    User,
    /// An administrator acting through an admin interface.
    Admin,
    /// A machine identity, such as an API client.
    ServiceAccount,
    /// A background job.
    Job,
    /// The system itself (migrations, maintenance).
    System,
    /// Nobody identified; carries no id.
    Anonymous,
}

impl ActorType {
    /// Every actor type, in wire-format order.
    pub const ALL: [ActorType; 6] = [
        ActorType::User,
        ActorType::Admin,
        ActorType::ServiceAccount,
        ActorType::Job,
        ActorType::System,
        ActorType::Anonymous,
    ];

    /// The wire-format name (`"user"`, `"service_account"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::Admin => "admin",
            ActorType::ServiceAccount => "service_account",
            ActorType::Job => "job",
            ActorType::System => "system",
            ActorType::Anonymous => "anonymous",
        }
    }
}

impl fmt::Display for ActorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActorType {
    type Err = ActorRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActorType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ActorRefError::UnknownType(s.to_owned()))
    }
}

/// Why an actor could not be built or parsed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorRefError {
    /// The `type` is not one of the six known kinds.
    #[error(
        "unknown actor type {0:?}; use one of user, admin, service_account, job, system, anonymous"
    )]
    UnknownType(String),
    /// A non-anonymous actor has no id (or an empty one).
    #[error("actor of type {0} needs a non-empty string \"id\"")]
    MissingId(ActorType),
    /// The id is longer than [`MAX_ACTOR_ID_BYTES`].
    #[error("actor id is {0} bytes; the limit is {MAX_ACTOR_ID_BYTES} bytes")]
    IdTooLong(usize),
    /// The input is not `{"type": "...", "id": "..."}`.
    #[error("invalid actor reference: {0}; expected {{\"type\":\"user\",\"id\":\"42\"}}")]
    InvalidShape(String),
}

/// A reference to the actor behind a change, e.g. `{"type":"user","id":"42"}`.
///
/// ```
/// use threadline_core::ActorRef;
/// let actor = ActorRef::user("42")?;
/// assert_eq!(actor.to_json(), r#"{"type":"user","id":"42"}"#);
/// assert_eq!(ActorRef::from_json(&actor.to_json())?, actor);
/// assert_eq!(ActorRef::anonymous().to_json(), r#"{"type":"anonymous"}"#);
/// # Ok::<(), threadline_core::ActorRefError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActorRef {
    kind: ActorType,
    id: Option<String>,
}

impl ActorRef {
    /// Builds an actor of any kind. The id is ignored for [`ActorType::Anonymous`].
    pub fn new(kind: ActorType, id: impl Into<String>) -> Result<Self, ActorRefError> {
        if kind == ActorType::Anonymous {
            return Ok(Self::anonymous());
        }
        let id = id.into();
        if id.is_empty() {
            return Err(ActorRefError::MissingId(kind));
        }
        if id.len() > MAX_ACTOR_ID_BYTES {
            return Err(ActorRefError::IdTooLong(id.len()));
        }
        Ok(Self { kind, id: Some(id) })
    }

    /// An end user.
    pub fn user(id: impl Into<String>) -> Result<Self, ActorRefError> {
        Self::new(ActorType::User, id)
    }

    /// An administrator.
    pub fn admin(id: impl Into<String>) -> Result<Self, ActorRefError> {
        Self::new(ActorType::Admin, id)
    }

    /// A service account.
    pub fn service_account(id: impl Into<String>) -> Result<Self, ActorRefError> {
        Self::new(ActorType::ServiceAccount, id)
    }

    /// A background job.
    pub fn job(id: impl Into<String>) -> Result<Self, ActorRefError> {
        Self::new(ActorType::Job, id)
    }

    /// The system itself.
    pub fn system(id: impl Into<String>) -> Result<Self, ActorRefError> {
        Self::new(ActorType::System, id)
    }

    /// The anonymous actor (no id).
    pub const fn anonymous() -> Self {
        Self {
            kind: ActorType::Anonymous,
            id: None,
        }
    }

    /// The actor's kind.
    pub const fn kind(&self) -> ActorType {
        self.kind
    }

    /// The actor's id; `None` only for anonymous.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The wire format as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("type".into(), self.kind.as_str().into());
        if let Some(id) = &self.id {
            map.insert("id".into(), id.clone().into());
        }
        serde_json::Value::Object(map)
    }

    /// The wire format as a string: `{"type":"user","id":"42"}`.
    pub fn to_json(&self) -> String {
        let kind = self.kind.as_str();
        match &self.id {
            Some(id) => format!(
                r#"{{"type":"{kind}","id":{}}}"#,
                serde_json::Value::from(id.as_str())
            ),
            None => format!(r#"{{"type":"{kind}"}}"#),
        }
    }

    /// Parses the wire format from a JSON string.
    pub fn from_json(s: &str) -> Result<Self, ActorRefError> {
        let value: serde_json::Value =
            serde_json::from_str(s).map_err(|e| ActorRefError::InvalidShape(e.to_string()))?;
        Self::from_value(&value)
    }

    /// Parses the wire format from a JSON value.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, ActorRefError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ActorRefError::InvalidShape("not a JSON object".into()))?;
        let kind = match obj.get("type") {
            Some(serde_json::Value::String(t)) => t.parse::<ActorType>()?,
            Some(_) => {
                return Err(ActorRefError::InvalidShape(
                    "\"type\" is not a string".into(),
                ));
            }
            None => return Err(ActorRefError::InvalidShape("missing \"type\"".into())),
        };
        match (kind, obj.get("id")) {
            (ActorType::Anonymous, _) => Ok(Self::anonymous()),
            (_, Some(serde_json::Value::String(id))) => Self::new(kind, id.as_str()),
            (_, None | Some(serde_json::Value::Null)) => Err(ActorRefError::MissingId(kind)),
            (_, Some(_)) => Err(ActorRefError::InvalidShape("\"id\" is not a string".into())),
        }
    }

    /// Parses the short CLI form `user:42` (or `anonymous`).
    pub fn parse_short(s: &str) -> Result<Self, ActorRefError> {
        match s.split_once(':') {
            Some((kind, id)) => Self::new(kind.parse()?, id),
            None => match s.parse::<ActorType>()? {
                ActorType::Anonymous => Ok(Self::anonymous()),
                kind => Err(ActorRefError::MissingId(kind)),
            },
        }
    }
}

impl fmt::Display for ActorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{}:{}", self.kind, id),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl Serialize for ActorRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ActorRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Self::from_value(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_round_trips_every_kind() {
        for kind in ActorType::ALL {
            let actor = ActorRef::new(kind, "7").unwrap();
            assert_eq!(ActorRef::from_json(&actor.to_json()).unwrap(), actor);
        }
        assert_eq!(ActorRef::anonymous().to_json(), r#"{"type":"anonymous"}"#);
        assert_eq!(
            ActorRef::service_account("svc").unwrap().to_json(),
            r#"{"type":"service_account","id":"svc"}"#
        );
    }

    #[test]
    fn parse_errors_are_typed() {
        assert_eq!(
            ActorRef::from_json(r#"{"type":"robot","id":"1"}"#),
            Err(ActorRefError::UnknownType("robot".into()))
        );
        assert_eq!(
            ActorRef::from_json(r#"{"type":"user"}"#),
            Err(ActorRefError::MissingId(ActorType::User))
        );
        assert_eq!(
            ActorRef::from_json(r#"{"type":"user","id":""}"#),
            Err(ActorRefError::MissingId(ActorType::User))
        );
        assert!(matches!(
            ActorRef::from_json(r#"{"type":"user","id":42}"#),
            Err(ActorRefError::InvalidShape(_))
        ));
        assert!(matches!(
            ActorRef::from_json("[1]"),
            Err(ActorRefError::InvalidShape(_))
        ));
        assert!(matches!(
            ActorRef::from_json("not json"),
            Err(ActorRefError::InvalidShape(_))
        ));
        assert_eq!(
            ActorRef::user("x".repeat(257)),
            Err(ActorRefError::IdTooLong(257))
        );
        assert!(ActorRef::user("x".repeat(256)).is_ok());
    }

    #[test]
    fn anonymous_ignores_id_and_short_form_parses() {
        assert_eq!(
            ActorRef::from_json(r#"{"type":"anonymous","id":"9"}"#).unwrap(),
            ActorRef::anonymous()
        );
        assert_eq!(
            ActorRef::parse_short("user:42").unwrap(),
            ActorRef::user("42").unwrap()
        );
        assert_eq!(
            ActorRef::parse_short("anonymous").unwrap(),
            ActorRef::anonymous()
        );
        assert_eq!(
            ActorRef::parse_short("admin"),
            Err(ActorRefError::MissingId(ActorType::Admin))
        );
    }
}
