//! libpq's other connection form, `host=db port=5432 user=app
//! password='s3 cret' dbname=app sslmode=require`: read as libpq reads it
//! (spaces around `=` allowed, single-quoted values with `\'` and `\\`),
//! turned into the `postgres://` URL the rest of the tool and sqlx take, and
//! masked without being parsed whole (a broken string still hides its
//! password).

use crate::percent::encode;

/// Why a key=value connection string was refused (never holds a value:
/// the caller shows the string masked).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{detail}")]
pub struct ConninfoError {
    pub detail: &'static str,
}

/// True when `text` is a key=value connection string rather than a URL.
pub fn is_conninfo(text: &str) -> bool {
    let t = text.trim_start();
    let key_len = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(t.len());
    !text.contains("://") && key_len > 0 && t[key_len..].trim_start().starts_with('=')
}

/// One `key=value` pair and where its value lies in the text.
struct Pair {
    key: String,
    value: String,
    span: (usize, usize),
}

/// The pairs read before the first problem, and the problem with the byte
/// where the value it was reading began.
fn pairs(text: &str) -> (Vec<Pair>, Option<(&'static str, usize)>) {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_space(i);
        if i >= b.len() {
            return (out, None);
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let key = text[start..i].to_ascii_lowercase();
        i = skip_space(i);
        if key.is_empty() || b.get(i) != Some(&b'=') {
            return (out, Some(("expected key=value pairs", start)));
        }
        i = skip_space(i + 1);
        let value_start = i;
        let mut value = Vec::new();
        if b.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match b.get(i) {
                    None => return (out, Some(("a quoted value is not closed", value_start))),
                    Some(b'\'') => break,
                    Some(b'\\') if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        i += 2;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
        }
        let value = String::from_utf8_lossy(&value).into_owned();
        out.push(Pair { key, value, span: (value_start, i) });
    }
}

/// The string with every password value replaced by `mask`, and
/// everything from a problem on (it may be inside a password).
pub fn mask_with(text: &str, mask: &str) -> String {
    let (pairs, problem) = pairs(text);
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for p in pairs.iter().filter(|p| p.key == "password") {
        out.push_str(&text[from..p.span.0]);
        out.push_str(mask);
        from = p.span.1;
    }
    match problem {
        // What follows a problem cannot be told apart: hide it whole.
        Some((_, at)) => {
            out.push_str(&text[from..at.max(from)]);
            out.push_str(mask);
        }
        None => out.push_str(&text[from..]),
    }
    out
}

/// The password of a connection string, if it has one.
pub fn password(text: &str) -> Option<String> {
    pairs(text).0.into_iter().find(|p| p.key == "password").map(|p| p.value)
}

/// The same connection as a `postgres://` URL, every value percent-encoded.
pub fn to_url(text: &str) -> Result<String, ConninfoError> {
    let refuse = |detail| ConninfoError { detail };
    let (pairs, problem) = pairs(text);
    if let Some((detail, _)) = problem {
        return Err(refuse(detail));
    }
    let get = |k: &str| pairs.iter().rev().find(|p| p.key == k).map(|p| p.value.as_str());
    let mut url = String::from("postgres://");
    if let Some(user) = get("user") {
        url.push_str(&encode(user));
    }
    if let Some(pw) = get("password") {
        url.push(':');
        url.push_str(&encode(pw));
    }
    if get("user").is_some() || get("password").is_some() {
        url.push('@');
    }
    if let Some(host) = get("host") {
        if host.contains(',') {
            return Err(refuse("several hosts in one string are not supported; give one"));
        }
        url.push_str(&encode(host));
    }
    if let Some(port) = get("port") {
        if port.parse::<u16>().is_err() {
            return Err(refuse("the port is not a number"));
        }
        url.push(':');
        url.push_str(port);
    }
    url.push('/');
    url.push_str(&encode(get("dbname").unwrap_or("")));
    let rest: Vec<String> = pairs
        .iter()
        .filter(|p| !matches!(p.key.as_str(), "user" | "password" | "host" | "port" | "dbname"))
        .map(|p| format!("{}={}", p.key, encode(&p.value)))
        .collect();
    if !rest.is_empty() {
        url.push('?');
        url.push_str(&rest.join("&"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_strings_become_urls() {
        let cases = [
            (
                "host=db.example.com port=6543 user=app password=s3cret dbname=orders sslmode=require",
                "postgres://app:s3cret@db.example.com:6543/orders?sslmode=require",
            ),
            ("host = 127.0.0.1 user=u password='a b\\'c\\\\d' dbname=x", "postgres://u:a%20b%27c%5Cd@127.0.0.1/x"),
            ("host=/var/run/postgresql dbname=app", "postgres://%2Fvar%2Frun%2Fpostgresql/app"),
            ("dbname=app application_name='my tool'", "postgres:///app?application_name=my%20tool"),
            ("password=p/w#x?y@z host=h", "postgres://:p%2Fw%23x%3Fy%40z@h/"),
        ];
        for (text, url) in cases {
            assert!(is_conninfo(text), "{text}");
            assert_eq!(to_url(text).as_deref(), Ok(url), "{text}");
        }
        for not in ["postgres://u:p@h/db", "", "just words", "=x"] {
            assert!(!is_conninfo(not), "{not}");
        }
    }

    #[test]
    fn broken_strings_are_refused_without_their_password() {
        for text in [
            "host=h password='unclosed secret",
            "host=h password=secret port=notaport",
            "host=a,b password=secret",
            "host=h password=secret stray",
        ] {
            let e = to_url(text).expect_err(text);
            assert!(!e.to_string().contains("secret"), "{text}: {e}");
            assert!(!mask_with(text, "***").contains("secret"), "{text}: {}", mask_with(text, "***"));
        }
        assert_eq!(mask_with("user=u password=hunter2 dbname=d", "***"), "user=u password=*** dbname=d");
        assert_eq!(mask_with("password = 'x y' host=h", "***"), "password = *** host=h");
        assert_eq!(password("host=h password='x y'").as_deref(), Some("x y"));
    }
}
