//! Settings, from environment variables (Spin `environment`, `secure-context serve --env`).
//! Every setting has a safe default; an invalid one is an error (the app then answers every
//! request with 500 and the error, under the strictest policy), never a weaker policy.
//!
//! | Variable | Values | Default |
//! |---|---|---|
//! | `SC_FRAME_ANCESTORS` | origins allowed to frame `sandbox.html`, space or comma separated: `https://host[:port]`, or `http://` for loopback hosts (development; the Observatory counts it as an insecure scheme) | none (same origin only) |
//! | `SC_REQUIRE_HTTPS` | `true`: plain-HTTP requests for a non-loopback host are redirected (308) to `https://`; `false`: never | `true` |
//! | `SC_API` | `on` / `off`: the JSON API under `/api/` | `off` |

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub frame_ancestors: Vec<String>,
    pub require_https: bool,
    pub api: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            frame_ancestors: Vec::new(),
            require_https: true,
            api: false,
        }
    }
}

pub const MAX_FRAME_ANCESTORS: usize = 32;

impl Config {
    /// Reads the settings through `get` (e.g. `|k| std::env::var(k).ok()`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let mut c = Config::default();
        if let Some(v) = get("SC_FRAME_ANCESTORS") {
            c.frame_ancestors = parse_frame_ancestors(&v)?;
        }
        if let Some(v) = get("SC_REQUIRE_HTTPS") {
            c.require_https = parse_bool("SC_REQUIRE_HTTPS", &v, ("true", "false"))?;
        }
        if let Some(v) = get("SC_API") {
            c.api = parse_bool("SC_API", &v, ("on", "off"))?;
        }
        Ok(c)
    }
}

fn parse_bool(name: &str, v: &str, (yes, no): (&str, &str)) -> Result<bool, String> {
    match v.trim() {
        s if s == yes => Ok(true),
        s if s == no => Ok(false),
        _ => Err(format!(
            "{name}={v:?} is invalid: expected {yes:?} or {no:?}"
        )),
    }
}

/// `https://host[:port]` (or `http://` for a loopback host), lower-case, no path, no wildcard.
pub fn parse_frame_ancestors(v: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for item in v.split([' ', ',', '\t']).filter(|s| !s.is_empty()) {
        let origin = parse_origin(item).map_err(|why| {
            format!("SC_FRAME_ANCESTORS: {item:?} is not an allowed origin ({why}); expected https://host[:port]")
        })?;
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    if out.len() > MAX_FRAME_ANCESTORS {
        return Err(format!(
            "SC_FRAME_ANCESTORS: {} origins, at most {MAX_FRAME_ANCESTORS}",
            out.len()
        ));
    }
    Ok(out)
}

fn parse_origin(item: &str) -> Result<String, &'static str> {
    let lower = item.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or("no scheme")?;
    let (host, port) = split_host_port(rest).ok_or("bad host or port")?;
    if !valid_host(host) {
        return Err("bad host");
    }
    match scheme {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => return Err("plain http is only allowed for loopback hosts"),
        _ => return Err("scheme must be https"),
    }
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// `host[:port]` with port 1..=65535 in decimal; IPv6 in brackets. No userinfo, path or query.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (h, rest) = s.split_at(end + 1);
        match rest {
            "" => (h, None),
            r => (h, Some(r.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u32 = p.parse().ok()?;
            if n == 0 || n > 65535 {
                return None;
            }
            Some(n as u16)
        }
    };
    Some((host, port))
}

/// A DNS name (letters, digits, `-`, dots; labels 1..=63) or an IP literal; at most 253 bytes.
pub fn valid_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `localhost`, `*.localhost`, 127.0.0.0/8, `[::1]`.
pub fn is_loopback(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    if h == "localhost" || h.ends_with(".localhost") || h == "[::1]" {
        return true;
    }
    h.parse::<std::net::Ipv4Addr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_are_safe() {
        assert_eq!(cfg(&[]).unwrap(), Config::default());
        assert!(Config::default().require_https);
        assert!(!Config::default().api);
    }

    #[test]
    fn frame_ancestors() {
        let c = cfg(&[(
            "SC_FRAME_ANCESTORS",
            "https://A.example, https://b.example:8443 http://localhost:8501",
        )])
        .unwrap();
        assert_eq!(
            c.frame_ancestors,
            [
                "https://a.example",
                "https://b.example:8443",
                "http://localhost:8501"
            ]
        );
        for bad in [
            "*",
            "https://*.example",
            "http://example.com",
            "https://example.com/path",
            "'unsafe-inline'",
            "https://a.example;script-src *",
            "data:",
            "https://",
            "https://a.example:0",
            "https://a.example:99999",
            "https://user@a.example",
            "example.com",
            "javascript://x",
        ] {
            assert!(cfg(&[("SC_FRAME_ANCESTORS", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans_fail_closed() {
        assert!(!cfg(&[("SC_REQUIRE_HTTPS", "false")]).unwrap().require_https);
        assert!(cfg(&[("SC_REQUIRE_HTTPS", "no")]).is_err());
        assert!(cfg(&[("SC_API", "on")]).unwrap().api);
        assert!(cfg(&[("SC_API", "yes")]).is_err());
    }
}
