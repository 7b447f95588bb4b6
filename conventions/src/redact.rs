//! Secrets out of everything the harness prints or records (logs, errors, `run.json`,
//! reports): a database URL keeps its scheme, user, host and database, never its password
//! or a secret query parameter. Every crate that shows a URL goes through here.

/// Query parameters whose values are secrets (libpq's `password`, `sslpassword`, and
/// anything named like a token or secret).
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// Where the userinfo of `url` ends: the last `@` after `://`, so a password holding
/// `@`, `:` or `/` is still covered (an `@` in the query only makes this hide more).
fn userinfo_end(url: &str, authority_start: usize) -> Option<usize> {
    url[authority_start..]
        .rfind('@')
        .map(|at| authority_start + at)
}

/// `url` with its password and secret query values replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return redact_query(url);
    };
    let authority_start = scheme_end + 3;
    match userinfo_end(url, authority_start) {
        Some(at) => {
            let user = url[authority_start..at]
                .split_once(':')
                .map_or(&url[authority_start..at], |(user, _)| user);
            let redacted_user = if url[authority_start..at].contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!(
                "{}{redacted_user}{}",
                &url[..authority_start],
                redact_query(&url[at..])
            )
        }
        None => redact_query(url),
    }
}

fn redact_query(text: &str) -> String {
    let Some((head, query)) = text.split_once('?') else {
        return text.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret_key(key) => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

/// The secret strings inside `url`: its password (as written and percent-decoded) and
/// its secret query values.
fn secrets_of(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some(scheme_end) = url.find("://")
        && let Some(at) = userinfo_end(url, scheme_end + 3)
        && let Some((_, password)) = url[scheme_end + 3..at].split_once(':')
    {
        secrets.push(password.to_owned());
        secrets.push(percent_decode(password));
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && is_secret_key(key)
            {
                secrets.push(value.to_owned());
                secrets.push(percent_decode(value));
            }
        }
    }
    secrets.retain(|secret| !secret.is_empty());
    // Longest first, so a secret that contains another is replaced whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.dedup();
    secrets
}

/// `text` (an error message, say) with `url` itself and every secret in it replaced:
/// the URL by its redacted form, a bare password by `***`.
pub fn scrub(text: &str, url: &str) -> String {
    let mut scrubbed = text.replace(url, &redact_url(url));
    for secret in secrets_of(url) {
        scrubbed = scrubbed.replace(&secret, "***");
    }
    scrubbed
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(
                    u8::try_from(hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)).unwrap_or(b'?'),
                );
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A password with every character that broke the old split: `@`, `:` and `/`.
    const HARD: &str = "postgres://app:p@ss:w/rd@db.internal:5432/aimate?sslmode=require";

    #[test]
    fn a_password_with_at_colon_and_slash_is_hidden() {
        let redacted = redact_url(HARD);
        assert_eq!(
            redacted,
            "postgres://app:***@db.internal:5432/aimate?sslmode=require"
        );
        assert!(!redacted.contains("ss:w"), "{redacted}");
    }

    #[test]
    fn secret_query_parameters_are_hidden() {
        let url = "postgres://app@db/aimate?password=hunter2&sslmode=require&sslpassword=k3y";
        assert_eq!(
            redact_url(url),
            "postgres://app@db/aimate?password=***&sslmode=require&sslpassword=***"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("sqlite://data/aimate.db"),
            "sqlite://data/aimate.db"
        );
    }

    #[test]
    fn scrub_removes_the_url_and_the_bare_password_from_any_text() {
        let encoded = "postgres://app:p%40ss%2Fw@db/aimate";
        let error = format!(
            "cannot connect to {encoded}: password \"p@ss/w\" rejected; also {HARD} and p@ss:w/rd"
        );
        let scrubbed = scrub(&scrub(&error, encoded), HARD);
        for leaked in ["p@ss/w", "p%40ss%2Fw", "p@ss:w/rd"] {
            assert!(!scrubbed.contains(leaked), "{leaked} in {scrubbed}");
        }
        assert!(
            scrubbed.contains("postgres://app:***@db/aimate"),
            "{scrubbed}"
        );
    }
}
