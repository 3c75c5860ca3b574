//! Masking of database passwords.
//!
//! A URL is masked before it reaches any log field, error, report or file.
//! Both places a libpq-style URL can carry a password are covered: the
//! userinfo (`postgres://user:secret@host/db`) and the `password` query parameter.

/// What a masked password is replaced with.
pub const MASK: &str = "***";

/// The URL with any password replaced by [`MASK`]. Strings that are not URLs
/// are returned unchanged.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    // The authority ends at the first '/', '?' or '#'.
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..rest_start]);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push(':');
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_len..];
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let query = &tail[q + 1..];
            let (query, fragment) = match query.find('#') {
                Some(h) => (&query[..h], &query[h..]),
                None => (query, ""),
            };
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={MASK}"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&masked.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

/// Replace every occurrence of the password of `url` inside `text` (for error
/// messages from drivers that may echo the connection string).
pub fn scrub(text: &str, url: &str) -> String {
    match password_of(url) {
        Some(p) if !p.is_empty() => text.replace(&p, MASK),
        _ => text.to_string(),
    }
}

/// The raw password of a URL, if it has one.
fn password_of(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if let Some(at) = authority.rfind('@')
        && let Some((_, p)) = authority[..at].split_once(':')
    {
        return Some(p.to_string());
    }
    let query = &rest[rest.find('?')? + 1..];
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("password"))
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_userinfo_and_query_passwords() {
        let cases = [
            ("postgres://u:s3cret@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgresql://u:p%40ss@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db?user=u&password=zz&x=1", "postgres://h/db?user=u&password=***&x=1"),
            ("postgres://u:a@b@[::1]:5432/db", "postgres://u:***@[::1]:5432/db"),
            ("postgres://u:pw@%2Fvar%2Frun%2Fpostgresql/db", "postgres://u:***@%2Fvar%2Frun%2Fpostgresql/db"),
            ("not a url", "not a url"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_url(input), want, "{input}");
        }
    }

    #[test]
    fn scrub_removes_the_password_from_any_text() {
        let url = "postgres://u:hunter2@h/db";
        assert_eq!(
            scrub("connect to postgres://u:hunter2@h/db failed: hunter2", url),
            "connect to postgres://u:***@h/db failed: ***"
        );
        assert_eq!(scrub("x", "postgres://u@h/db"), "x");
        assert_eq!(scrub("pw=zz", "postgres://h/db?password=zz"), "pw=***");
    }
}
