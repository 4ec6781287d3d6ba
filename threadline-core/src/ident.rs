//! Validated PostgreSQL identifiers and schema-qualified table names.
//!
//! Parsing follows the rules `pg_dump -t` uses for a table pattern without wildcards:
//! an unquoted name folds to lower case, a `"Quoted"` name keeps its case and may hold any
//! character (write `""` for a quote), and `schema.table` qualifies a name.

use std::fmt;
use std::str::FromStr;

/// Longest identifier PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`).
pub const MAX_IDENT_BYTES: usize = 63;

/// The schema used for unqualified table names.
pub const DEFAULT_SCHEMA: &str = "public";

/// Why a name was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentError {
    /// Nothing to parse.
    #[error("empty name; give a table as `table` or `schema.table`")]
    Empty,
    /// Longer than PostgreSQL keeps.
    #[error(
        "name {name:?} is {len} bytes; PostgreSQL truncates names at {MAX_IDENT_BYTES} bytes, so shorten it"
    )]
    TooLong {
        /// The name as given.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A NUL byte, which PostgreSQL never accepts in a name.
    #[error("name {0:?} contains a NUL byte")]
    Nul(String),
    /// A character that needs quoting appears in an unquoted name.
    #[error(
        "invalid character {ch:?} in unquoted name {input:?}; wrap the name in double quotes (\"My Table\") to keep it as written"
    )]
    InvalidChar {
        /// The input.
        input: String,
        /// The offending character.
        ch: char,
    },
    /// A quoted name is not closed.
    #[error("unterminated quoted name in {0:?}; close it with a double quote")]
    Unterminated(String),
    /// More than two dotted parts, or text after a closing quote.
    #[error("cannot parse {0:?} as `table` or `schema.table`")]
    Malformed(String),
}

/// One validated identifier (the exact name as stored in the catalog).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Accepts an exact catalog name (no folding): any non-empty text of at most 63 bytes without NUL.
    pub fn new(name: impl Into<String>) -> Result<Self, IdentError> {
        let name = name.into();
        if name.is_empty() {
            return Err(IdentError::Empty);
        }
        if name.contains('\0') {
            return Err(IdentError::Nul(name));
        }
        if name.len() > MAX_IDENT_BYTES {
            let len = name.len();
            return Err(IdentError::TooLong { name, len });
        }
        Ok(Self(name))
    }

    /// Parses one name with folding rules: unquoted folds to lower case, quoted keeps case.
    pub fn parse(input: &str) -> Result<Self, IdentError> {
        let parts = split_parts(input)?;
        match parts.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(IdentError::Malformed(input.to_owned())),
        }
    }

    /// The exact name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier: `"My ""Table"""`.
    pub fn quoted(&self) -> String {
        quote_ident(&self.0)
    }
}

impl fmt::Display for Ident {
    /// Writes the quoted form, ready for SQL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

/// A schema-qualified table name.
///
/// ```
/// use threadline_core::TableName;
/// let t: TableName = "Sales.\"OrderLines\"".parse()?;
/// assert_eq!(t.schema().as_str(), "sales");
/// assert_eq!(t.name().as_str(), "OrderLines");
/// assert_eq!(t.to_string(), r#""sales"."OrderLines""#);
/// assert_eq!("posts".parse::<TableName>()?.schema().as_str(), "public");
/// # Ok::<(), threadline_core::IdentError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    schema: Ident,
    name: Ident,
}

impl TableName {
    /// Builds a table name from exact catalog names.
    pub fn new(schema: Ident, name: Ident) -> Self {
        Self { schema, name }
    }

    /// Parses `table` or `schema.table`; an unqualified name uses `default_schema`.
    pub fn parse_with_default(input: &str, default_schema: &Ident) -> Result<Self, IdentError> {
        let mut parts = split_parts(input)?;
        match parts.len() {
            1 => Ok(Self::new(default_schema.clone(), parts.remove(0))),
            2 => {
                let name = parts.remove(1);
                Ok(Self::new(parts.remove(0), name))
            }
            _ => Err(IdentError::Malformed(input.to_owned())),
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Ident {
        &self.schema
    }

    /// The table's own name.
    pub fn name(&self) -> &Ident {
        &self.name
    }

    /// `schema.table`, quoting only the parts that need it (for messages and CLI arguments).
    pub fn display_name(&self) -> String {
        format!(
            "{}.{}",
            minimal_quote(self.schema.as_str()),
            minimal_quote(self.name.as_str())
        )
    }
}

impl fmt::Display for TableName {
    /// Writes `"schema"."table"`, ready for SQL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

impl FromStr for TableName {
    type Err = IdentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_with_default(s, &Ident(DEFAULT_SCHEMA.to_owned()))
    }
}

/// Quotes an identifier for SQL, doubling embedded quotes.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string as a SQL literal, doubling embedded single quotes.
///
/// The result is safe with `standard_conforming_strings = on` (the default since PostgreSQL 9.1).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The name as `psql` would print it: bare when it is already a folded, plain name.
fn minimal_quote(name: &str) -> String {
    let plain = name.chars().enumerate().all(|(i, c)| {
        c == '_'
            || c.is_lowercase()
            || (c.is_alphabetic() && !c.is_uppercase())
            || (i > 0 && (c.is_ascii_digit() || c == '$'))
    });
    if plain && !name.is_empty() {
        name.to_owned()
    } else {
        quote_ident(name)
    }
}

fn is_unquoted_char(c: char, first: bool) -> bool {
    c == '_' || c.is_alphabetic() || (!first && (c.is_ascii_digit() || c == '$'))
}

fn split_parts(input: &str) -> Result<Vec<Ident>, IdentError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(IdentError::Empty);
    }
    let malformed = || IdentError::Malformed(input.to_owned());
    let mut parts = Vec::new();
    let mut chars = trimmed.chars().peekable();
    loop {
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        name.push('"');
                    }
                    Some('"') => break,
                    Some(c) => name.push(c),
                    None => return Err(IdentError::Unterminated(input.to_owned())),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return Err(malformed());
                }
                if !is_unquoted_char(c, name.is_empty()) {
                    return Err(IdentError::InvalidChar {
                        input: input.to_owned(),
                        ch: c,
                    });
                }
                name.extend(c.to_lowercase());
                chars.next();
            }
        }
        parts.push(Ident::new(name).map_err(|e| match e {
            IdentError::Empty => malformed(),
            other => other,
        })?);
        match chars.next() {
            None => break,
            Some('.') if parts.len() < 2 => {}
            Some(_) => return Err(malformed()),
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<TableName, IdentError> {
        s.parse()
    }

    #[test]
    fn folding_and_quoting_follow_pg_dump() {
        let table = t("Posts").unwrap();
        assert_eq!(
            (table.schema().as_str(), table.name().as_str()),
            ("public", "posts")
        );
        let table = t(r#""App"."Order ""Lines""""#).unwrap();
        assert_eq!(table.schema().as_str(), "App");
        assert_eq!(table.name().as_str(), r#"Order "Lines""#);
        assert_eq!(table.to_string(), r#""App"."Order ""Lines""""#);
        assert_eq!(table.display_name(), r#""App"."Order ""Lines""""#);
        assert_eq!(t("sales.orders").unwrap().display_name(), "sales.orders");
        assert_eq!(t("  café.ÉTÉ ").unwrap().name().as_str(), "été");
    }

    #[test]
    fn bad_names_are_rejected_with_reasons() {
        assert_eq!(t(""), Err(IdentError::Empty));
        assert!(matches!(t("a.b.c"), Err(IdentError::Malformed(_))));
        assert!(matches!(t("a."), Err(IdentError::Malformed(_))));
        assert!(matches!(t(".a"), Err(IdentError::Malformed(_))));
        assert!(matches!(t("\"\""), Err(IdentError::Malformed(_))));
        assert!(matches!(t("\"abc"), Err(IdentError::Unterminated(_))));
        assert!(matches!(
            t("my table"),
            Err(IdentError::InvalidChar { ch: ' ', .. })
        ));
        assert!(matches!(
            t("1abc"),
            Err(IdentError::InvalidChar { ch: '1', .. })
        ));
        assert!(matches!(
            t("a;drop"),
            Err(IdentError::InvalidChar { ch: ';', .. })
        ));
        assert!(matches!(t("\"a\"b"), Err(IdentError::Malformed(_))));
        assert!(matches!(
            t(&"x".repeat(64)),
            Err(IdentError::TooLong { len: 64, .. })
        ));
        assert!(t(&"x".repeat(63)).is_ok());
        assert!(matches!(Ident::new("a\0b"), Err(IdentError::Nul(_))));
    }

    #[test]
    fn literals_double_quotes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
