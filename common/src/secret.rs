//! Masking of database passwords and agent tokens.
//!
//! A URL is masked before it reaches any log field, error, report or file.
//! Every place a connection string can carry a password is covered: a URL's
//! userinfo (`postgres://user:secret@host/db`), its `password` query
//! parameter, a key=value string's `password=` (see [`crate::conninfo`]),
//! and a URL whose password holds an unencoded `/`, `?` or `#`, where the
//! userinfo runs to the last `@` (masked generously: when in doubt, hide).
//! [`Secrets`] scrubs text that may echo the command line or the
//! environment (a usage error, a last-resort error line).

use crate::conninfo;

/// What a masked password is replaced with.
pub const MASK: &str = "***";

/// The shortest password or token replaced wherever it appears on its own
/// (a connection string holding it is always masked whole): a shorter one
/// cannot be told from ordinary text, and replacing it would garble every
/// message ("p" in "postgres").
const MIN_BARE: usize = 4;

/// Where the userinfo of a URL ends (`rest` is after `scheme://`): the last
/// `@` of the authority, or, when the authority has none but an `@` comes
/// later (a password with an unencoded `/`, `?` or `#`), the last `@` of all.
fn userinfo_end(rest: &str) -> Option<usize> {
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest[..authority_len].rfind('@').or_else(|| {
        let at = rest.rfind('@')?;
        rest[..at].contains(':').then_some(at)
    })
}

/// Any connection string (a URL, with or without its scheme, or key=value)
/// with its password masked; other text is returned unchanged.
pub fn mask_url(url: &str) -> String {
    if conninfo::is_conninfo(url) {
        return conninfo::mask_with(url, MASK);
    }
    // No scheme: a URL with it left out (`u:pw@host/db`) still hides its password.
    let rest_start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[rest_start..];
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..rest_start]);
    let after_userinfo = match userinfo_end(rest) {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push(':');
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            at
        }
        None => 0,
    };
    let rest = &rest[after_userinfo..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    out.push_str(&rest[..authority_len]);
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
    let text = text.replace(url, &mask_url(url));
    match password_of(url) {
        Some(p) if p.len() >= MIN_BARE => {
            let decoded = crate::percent::decode(&p);
            text.replace(&p, MASK).replace(&decoded, MASK)
        }
        _ => text,
    }
}

/// The raw password of a connection string (as written), if it has one.
fn password_of(url: &str) -> Option<String> {
    if conninfo::is_conninfo(url) {
        return conninfo::password(url);
    }
    let rest = &url[url.find("://").map_or(0, |i| i + 3)..];
    if let Some(at) = userinfo_end(rest)
        && let Some((_, p)) = rest[..at].split_once(':')
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

/// True when masking changes `text`: it holds a password (even one that
/// cannot be read out of it, such as an unclosed quote's).
fn holds_secret(text: &str) -> bool {
    mask_url(text) != text
}

/// What this process was given that must never be printed: connection
/// strings (from the command line or `DATABASE_URL`) and the agent token
/// (`--token` or `LOADGEN_TOKEN`).
#[derive(Debug, Default)]
pub struct Secrets {
    /// Connection strings with a password.
    urls: Vec<String>,
    /// Tokens, printed nowhere whole.
    tokens: Vec<String>,
}

impl Secrets {
    /// From this process's arguments and environment: `DATABASE_URL`, the
    /// token, and any other variable whose value holds a password (a URL
    /// put in `LOADGEN_PROFILE` by mistake is echoed by its error).
    pub fn of_process() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut s = Self::from_parts(std::env::args().skip(1), env("DATABASE_URL"), env("LOADGEN_TOKEN"));
        s.urls.extend(std::env::vars().map(|(_, v)| v).filter(|v| holds_secret(v)));
        s
    }

    /// From arguments, a database URL and a token.
    pub fn from_parts(args: impl Iterator<Item = String>, url: Option<String>, token: Option<String>) -> Self {
        let mut s = Secrets::default();
        let mut after_token_flag = false;
        for arg in args {
            if after_token_flag {
                s.tokens.push(arg.clone());
            }
            after_token_flag = arg == "--token";
            if let Some(t) = arg.strip_prefix("--token=") {
                s.tokens.push(t.to_string());
            }
            let value = arg.split_once('=').filter(|(k, _)| k.starts_with("--")).map_or(arg.as_str(), |(_, v)| v);
            if holds_secret(value) {
                s.urls.push(value.to_string());
            }
        }
        s.urls.extend(url.filter(|u| holds_secret(u)));
        s.tokens.extend(token);
        s.tokens.retain(|t| !t.is_empty());
        s
    }

    /// `text` with every connection string masked, every password and
    /// every token replaced by [`MASK`].
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for url in &self.urls {
            text = scrub(&text, url);
        }
        for t in self.tokens.iter().filter(|t| t.len() >= MIN_BARE) {
            text = text.replace(t.as_str(), MASK);
        }
        text
    }
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
            ("u:pw@h/db", "u:***@h/db"),
            ("http://h:8080/x", "http://h:8080/x"),
            // Unencoded '/', '?', '#' in the password: the userinfo runs to the last '@'.
            ("postgres://u:pa/ss@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u:pa?ss@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
            ("postgres://u:pa#ss@h/db", "postgres://u:***@h/db"),
            ("host=h user=u password=pw dbname=d", "host=h user=u password=*** dbname=d"),
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
        assert_eq!(
            scrub("cannot stop or pause postgres://u:p@h/db", "postgres://u:p@h/db"),
            "cannot stop or pause postgres://u:***@h/db",
            "a one-letter password is masked in its URL, not in every word"
        );
        assert_eq!(scrub("pw=zzz9", "postgres://h/db?password=zzz9"), "pw=***");
        assert_eq!(scrub("bad: host=h password=a%2Fb", "host=h password=a%2Fb"), "bad: host=h password=***");
        assert_eq!(scrub("p/w", "postgres://u:p%2Fw@h/db"), "***", "decoded too");
    }

    #[test]
    fn process_secrets_cover_arguments_urls_and_tokens() {
        let args = [
            "run",
            "postgres://u:hunter22@h/db",
            "--database-url=host=h password=kv-secret",
            "--token",
            "tok-abcdef",
            "--token=tok-second",
        ]
        .map(String::from);
        let s =
            Secrets::from_parts(args.into_iter(), Some("postgres://h/db?password=envpw".into()), Some("envtok".into()));
        let text = "unrecognized subcommand 'postgres://u:hunter22@h/db'; invalid value 'host=h password=kv-secret'; \
                    tok-abcdef tok-second envpw envtok";
        let out = s.scrub(text);
        for secret in ["hunter22", "kv-secret", "tok-abcdef", "tok-second", "envpw", "envtok"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("postgres://u:***@h/db"), "{out}");
    }
}
