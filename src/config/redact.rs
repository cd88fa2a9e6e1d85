//! Settings that may carry a password (`store.url`,
//! `archive.postgres_url`) are shown only with the password masked: a
//! debug print or an error message ends up in logs.

/// The URL with the password of its user info, and any `password` or
/// `pass` query parameter, replaced by `***`; the rest (host, port,
/// database) stays readable for whoever debugs a connection.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return keywords(url);
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // The last '@' ends the user info even when a password holds a '/' or
    // an '@' unencoded: masking too much is better than showing a part.
    let mut out = format!("{scheme}://");
    match before_query.rsplit_once('@') {
        Some((user_info, host_and_path)) => {
            match user_info.split_once(':') {
                Some((user, _password)) => out.push_str(&format!("{user}:***@")),
                None => out.push_str(&format!("{user_info}@")),
            }
            out.push_str(host_and_path);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if is_password(name) => format!("{name}=***"),
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A libpq keyword string (`host=db user=a password=x`).
fn keywords(text: &str) -> String {
    text.split_whitespace()
        .map(|word| match word.split_once('=') {
            Some((name, _)) if is_password(name) => format!("{name}=***"),
            _ => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_password(name: &str) -> bool {
    name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("pass")
}

/// Every URL of a list, masked.
pub fn urls(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| url(u)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_stays() {
        assert_eq!(
            url("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            url("rediss://app:p@ss:w@rd@redis.internal:6380"),
            "rediss://app:***@redis.internal:6380"
        );
        assert_eq!(
            url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(
            url("postgres://arch:pw@db/loyalty?password=x&sslmode=require"),
            "postgres://arch:***@db/loyalty?password=***&sslmode=require"
        );
        assert_eq!(url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(url("redis://user@host"), "redis://user@host");
        assert_eq!(url("redis://:a/b@host/0"), "redis://:***@host/0");
        assert_eq!(
            url("host=db user=arch password=x dbname=l"),
            "host=db user=arch password=*** dbname=l"
        );
    }
}
