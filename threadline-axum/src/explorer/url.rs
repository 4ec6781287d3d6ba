//! Building the explorer's links: base path, query strings.

/// `""` for the root, else `/a/b` with no trailing slash, every character outside the
/// unreserved set and `/` percent-encoded, so the prefix is safe in any link.
pub(super) fn normalize_base(path: &str) -> String {
    let mut out = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~%".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

/// A link inside the explorer: `base` + `path` + `?query` built from the non-empty pairs.
pub(super) fn link<'a>(
    base: &str,
    path: &str,
    query: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut url = format!("{base}{path}");
    if url.is_empty() {
        url.push('/');
    }
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (name, value) in query {
        if !value.is_empty() {
            serializer.append_pair(name, value);
            any = true;
        }
    }
    if any {
        url.push('?');
        url.push_str(&serializer.finish());
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_paths_are_normalized_and_encoded() {
        assert_eq!(normalize_base("/"), "");
        assert_eq!(normalize_base(""), "");
        assert_eq!(normalize_base("admin/audit/"), "/admin/audit");
        assert_eq!(normalize_base("/a b/\"x\""), "/a%20b/%22x%22");
    }

    #[test]
    fn links_skip_empty_values_and_encode_the_rest() {
        assert_eq!(link("", "", []), "/");
        assert_eq!(link("/audit", "", [("table", "")]), "/audit");
        assert_eq!(
            link(
                "/audit",
                "/row",
                [("table", "public.posts"), ("pk", "{\"id\": 1}")]
            ),
            "/audit/row?table=public.posts&pk=%7B%22id%22%3A+1%7D"
        );
    }
}
