//! Parsing of PostgreSQL connection URLs, for the two things the tool needs
//! from them: the database host (to name tracked results and to relay
//! traffic through an artificial delay) and a copy pointing elsewhere.
//!
//! Forms handled: `postgres[ql]://[user[:password]@][host][:port][/db][?params]`
//! with a missing port (5432), an IPv6 literal in brackets, a percent-encoded
//! password or host, a unix-socket directory as host (`%2Fvar%2Frun%2Fpostgresql`
//! or `?host=/var/run/postgresql`), and no host at all (the default socket).

use thiserror::Error;

/// A URL this module cannot make sense of.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("database URL {masked} cannot be used: {detail}")]
pub struct DbUrlError {
    pub masked: String,
    pub detail: &'static str,
}

/// Where a URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP host (name, IPv4 or IPv6 without brackets) and port.
    Tcp { host: String, port: u16 },
    /// A unix-socket directory (empty when the default socket is meant).
    Socket { dir: String },
}

/// The parts of a URL the tool uses; the password is never kept apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbUrl {
    raw: String,
    /// Byte range of the `host[:port]` part inside `raw` (empty when absent).
    host_span: (usize, usize),
    pub endpoint: Endpoint,
}

/// A connection string as the user gave it (a `postgres://` URL or a
/// libpq key=value string) as the checked URL every part of the tool takes.
/// Errors are one line and never hold the password.
pub fn normalize(text: &str) -> Result<String, String> {
    let url = if crate::conninfo::is_conninfo(text) {
        crate::conninfo::to_url(text)
            .map_err(|e| format!("connection string {} cannot be used: {e}", crate::secret::mask_url(text)))?
    } else {
        text.trim().to_string()
    };
    DbUrl::parse(&url).map_err(|e| e.to_string())?;
    Ok(url)
}

impl DbUrl {
    /// Parse a connection URL.
    pub fn parse(url: &str) -> Result<DbUrl, DbUrlError> {
        let err = |detail| DbUrlError { masked: crate::secret::mask_url(url), detail };
        let rest_start = match url.find("://") {
            Some(i) if matches!(&url[..i], "postgres" | "postgresql") => i + 3,
            _ => return Err(err("it must start with postgres:// or postgresql:// (or be libpq's key=value form)")),
        };
        let rest = &url[rest_start..];
        let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        // An '@' after the host, before any parameter's '=': a password
        // holding an unencoded '/', '?' or '#' cut the userinfo short.
        let after = &rest[authority_len..];
        if after.find('@').is_some_and(|at| !after[..at].contains('=')) {
            return Err(err(
                "an '@' after the host: percent-encode '/', '?', '#' and '@' in a user name or password (%2F, %3F, %23, %40)",
            ));
        }
        let authority = &rest[..authority_len];
        let host_offset = authority.rfind('@').map_or(0, |at| at + 1);
        let hostport = &authority[host_offset..];
        let start = rest_start + host_offset;
        let host_span = (start, start + hostport.len());
        let query = rest[authority_len..].split_once('?').map(|(_, q)| q.split('#').next().unwrap_or(q)).unwrap_or("");
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| crate::percent::decode(v))
        };
        let (host, port_text) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some(close) = v6.find(']') else { return Err(err("unclosed [ in an IPv6 host")) };
            let after = &v6[close + 1..];
            (v6[..close].to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (crate::percent::decode(h), Some(p)),
                None => (crate::percent::decode(hostport), None),
            }
        };
        let port = match port_text.map(str::to_string).or_else(|| param("port")) {
            Some(p) if !p.is_empty() => p.parse::<u16>().map_err(|_| err("the port is not a number"))?,
            _ => 5432,
        };
        let host = if host.is_empty() { param("host").unwrap_or_default() } else { host };
        let endpoint = if host.is_empty() || host.starts_with('/') {
            Endpoint::Socket { dir: host }
        } else {
            Endpoint::Tcp { host, port }
        };
        Ok(DbUrl { raw: url.to_string(), host_span, endpoint })
    }

    /// A short, file-name-safe name for the database host: `db.example.com`,
    /// `127.0.0.1`, `::1` as `ipv6-1`, a socket as `socket-var-run-postgresql`.
    pub fn host_label(&self) -> String {
        let raw = match &self.endpoint {
            Endpoint::Tcp { host, .. } if host.contains(':') => format!("ipv6-{host}"),
            Endpoint::Tcp { host, .. } => host.clone(),
            Endpoint::Socket { dir } if dir.is_empty() => "socket".to_string(),
            Endpoint::Socket { dir } => format!("socket{dir}"),
        };
        let mut label: String =
            raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
        while label.contains("--") {
            label = label.replace("--", "-");
        }
        label.trim_matches('-').to_ascii_lowercase()
    }

    /// The same URL with the query parameter `name` set to `value`, unless
    /// the user already set it (theirs is kept).
    pub fn with_param_default(&self, name: &str, value: &str) -> String {
        let (body, fragment) = match self.raw.find('#') {
            Some(i) => (&self.raw[..i], &self.raw[i..]),
            None => (self.raw.as_str(), ""),
        };
        let query = body.split_once('?').map_or("", |(_, q)| q);
        if query.split('&').any(|kv| kv.split('=').next() == Some(name)) {
            return self.raw.clone();
        }
        let sep = if !body.contains('?') {
            "?"
        } else if body.ends_with(['?', '&']) {
            ""
        } else {
            "&"
        };
        format!("{body}{sep}{name}={}{fragment}", crate::percent::encode(value))
    }

    /// The same URL pointing at `host:port` over TCP (credentials, database
    /// and parameters kept). Used to route a connection through a relay.
    pub fn with_tcp_endpoint(&self, host: &str, port: u16) -> String {
        let (a, b) = self.host_span;
        format!("{}{host}:{port}{}", &self.raw[..a], &self.raw[b..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp { host: host.into(), port }
    }

    #[test]
    fn a_parameter_is_added_unless_the_user_set_it() {
        let with = |url: &str| DbUrl::parse(url).expect(url).with_param_default("application_name", "loadgen a");
        assert_eq!(with("postgres://u:p@h/db"), "postgres://u:p@h/db?application_name=loadgen%20a");
        assert_eq!(
            with("postgres://h/db?sslmode=disable"),
            "postgres://h/db?sslmode=disable&application_name=loadgen%20a"
        );
        assert_eq!(with("postgres://h/db?"), "postgres://h/db?application_name=loadgen%20a");
        assert_eq!(with("postgres://h/db?application_name=mine"), "postgres://h/db?application_name=mine");
        assert_eq!(with("postgres:///db?host=/tmp&application_name=x"), "postgres:///db?host=/tmp&application_name=x");
    }

    #[test]
    fn every_url_form_names_the_right_host() {
        let cases = [
            ("postgres://u:p@db.example.com:6543/app", tcp("db.example.com", 6543), "db.example.com"),
            ("postgresql://u@DB.Example.com/app", tcp("DB.Example.com", 5432), "db.example.com"),
            ("postgres://u:p%40ss%3Aword@h/db", tcp("h", 5432), "h"),
            ("postgres://u:a@b@h2:5433/db", tcp("h2", 5433), "h2"),
            ("postgres://u:p@[::1]:5432/db", tcp("::1", 5432), "ipv6-1"),
            ("postgres://[2001:db8::7]/db", tcp("2001:db8::7", 5432), "ipv6-2001-db8-7"),
            (
                "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
                Endpoint::Socket { dir: "/var/run/postgresql".into() },
                "socket-var-run-postgresql",
            ),
            ("postgres:///db?host=/tmp/sock&user=u", Endpoint::Socket { dir: "/tmp/sock".into() }, "socket-tmp-sock"),
            ("postgres:///db", Endpoint::Socket { dir: String::new() }, "socket"),
            ("postgres://127.0.0.1:5432", tcp("127.0.0.1", 5432), "127.0.0.1"),
            ("postgres://h/db?port=7777", tcp("h", 7777), "h"),
        ];
        for (url, endpoint, label) in cases {
            let u = DbUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(u.endpoint, endpoint, "{url}");
            assert_eq!(u.host_label(), label, "{url}");
        }
    }

    #[test]
    fn rewrites_the_endpoint_and_keeps_the_rest() {
        let u = DbUrl::parse("postgres://u:s%40cret@db:5432/app?sslmode=disable").expect("parse");
        assert_eq!(
            u.with_tcp_endpoint("127.0.0.1", 40000),
            "postgres://u:s%40cret@127.0.0.1:40000/app?sslmode=disable"
        );
        let v6 = DbUrl::parse("postgres://[::1]:5432/app").expect("parse");
        assert_eq!(v6.with_tcp_endpoint("127.0.0.1", 1), "postgres://127.0.0.1:1/app");
    }

    #[test]
    fn refuses_non_postgres_urls_without_echoing_passwords() {
        let e = DbUrl::parse("mysql://u:hunter2@h/db").expect_err("not postgres");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(DbUrl::parse("postgres://h:port/db").is_err());
        assert!(DbUrl::parse("postgres://[::1/db").is_err());
        for url in
            ["postgres://u:pa/ss@h/db", "postgres://u:pa?ss@h/db", "postgres://u:pa#ss@h/db", "postgres://u:a@b/c@h/db"]
        {
            let e = DbUrl::parse(url).expect_err(url).to_string();
            assert!(e.contains("percent-encode") && !e.contains("pa/") && !e.contains("ss@"), "{url}: {e}");
        }
        assert!(DbUrl::parse("postgres://h/db?application_name=me@there").is_ok());
    }

    #[test]
    fn key_value_strings_and_urls_normalize_to_one_url() {
        assert_eq!(normalize(" postgres://u:p@h/db ").as_deref(), Ok("postgres://u:p@h/db"));
        assert_eq!(normalize("host=h user=u password=p dbname=db").as_deref(), Ok("postgres://u:p@h/db"));
        for bad in ["host=h password=zz9 port=x", "postgres://u:zz9@h:x/db", "mysql://u:zz9@h/db", "u:zz9@h"] {
            let e = normalize(bad).expect_err(bad);
            assert!(!e.contains("zz9"), "{bad}: {e}");
        }
    }
}
