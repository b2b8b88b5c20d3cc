//! Naming the target of the Kinesis sink: the stream, and a sanity check
//! of a custom endpoint URL. Pure, and built without the `aws` feature so
//! that the config can be checked either way.

/// Which stream to write to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamId {
    /// A stream name in the client's region.
    Name(String),
    /// A stream ARN (region and account included).
    Arn(String),
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamId::Name(n) | StreamId::Arn(n) => f.write_str(n),
        }
    }
}

/// A loosely checked `http(s)://host[:port][/path]`: enough to turn a typo
/// into a clear error at start instead of a failure per request.
pub fn check_endpoint_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains white space");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("user info is not supported");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return Err("unclosed [ in the host"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err("the host has characters a host name cannot have");
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err("the port is not a number within 1-65535");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        for ok in [
            "http://127.0.0.1:4566",
            "https://kinesis.eu-west-1.amazonaws.com",
            "http://localhost:8080/",
            "http://[::1]:4566",
            "https://vpce-1.kinesis.eu-west-1.vpce.amazonaws.com/x",
        ] {
            assert_eq!(check_endpoint_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1:4566",
            "ftp://x",
            "http://",
            "http://:80",
            "http://host:notaport",
            "http://host:70000",
            "http://ho st",
            "http://[::1",
            "http://a@b",
            "http://exa$mple.com",
        ] {
            assert!(check_endpoint_url(bad).is_err(), "{bad}");
        }
    }
}
