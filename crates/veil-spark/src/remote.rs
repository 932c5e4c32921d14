//! The address of a Spark Connect server: `sc://host[:port][/;param=value;...]`.

use std::fmt;
use std::str::FromStr;

/// Spark Connect's default port.
pub const DEFAULT_PORT: u16 = 15002;

/// A Spark Connect address, checked: `sc://host[:port]`, optionally followed by
/// `/;param=value;...` (for example `/;use_ssl=true;token=...`), which is passed to the
/// client as given.
#[derive(Clone, PartialEq, Eq)]
pub struct Remote {
    url: String,
    host: String,
    port: u16,
}

/// Why a Spark Connect address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{url:?} is not a Spark Connect address: {reason} (expected sc://host:port, e.g. sc://localhost:15002)"
)]
pub struct RemoteError {
    /// The address as given (without its parameters, which may hold a token).
    pub url: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Remote {
    /// Parses and checks an address.
    ///
    /// # Errors
    /// [`RemoteError`] if it does not start with `sc://`, has no host, or has a port that
    /// is not a number from 1 to 65535.
    pub fn parse(text: &str) -> Result<Self, RemoteError> {
        let text = text.trim();
        let shown = text.split(';').next().unwrap_or(text).to_string();
        let error = |reason| RemoteError {
            url: shown.clone(),
            reason,
        };
        let rest = text
            .strip_prefix("sc://")
            .ok_or_else(|| error("it must start with sc://"))?;
        let authority = rest.split(['/', ';', '?', '#']).next().unwrap_or_default();
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            // [IPv6]:port
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| error("an IPv6 host must be closed by ]"))?;
            (host.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), Some(port)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(error("it names no host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| error("the port must be a number from 1 to 65535"))?,
        };
        Ok(Self {
            url: text.to_string(),
            host,
            port,
        })
    }

    /// The address as given, parameters included (pass it to the client).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The host.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Remote {
    /// `sc://host:port`, without parameters (they may hold a token).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "sc://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "sc://{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Remote({self})")
    }
}

impl FromStr for Remote {
    type Err = RemoteError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<(&str, u16), &str>) {
        match (Remote::parse(text), expect) {
            (Ok(remote), Ok((host, port))) => {
                assert_eq!((remote.host(), remote.port()), (host, port), "{text}");
                assert_eq!(remote.url(), text.trim());
            }
            (Err(error), Err(reason)) => assert_eq!(error.reason, reason, "{text}"),
            (got, expected) => panic!("{text}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn parses_spark_connect_addresses() {
        check("sc://localhost:15002", Ok(("localhost", 15002)));
        check(
            "sc://spark.example.com",
            Ok(("spark.example.com", DEFAULT_PORT)),
        );
        check("sc://10.0.0.7:443/;use_ssl=true", Ok(("10.0.0.7", 443)));
        check("sc://[::1]:15003", Ok(("::1", 15003)));
        check(" sc://host:1 ", Ok(("host", 1)));
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        check("localhost:15002", Err("it must start with sc://"));
        check("http://localhost:15002", Err("it must start with sc://"));
        check("sc://", Err("it names no host"));
        check("sc://:15002", Err("it names no host"));
        check(
            "sc://host:port",
            Err("the port must be a number from 1 to 65535"),
        );
        check(
            "sc://host:0",
            Err("the port must be a number from 1 to 65535"),
        );
        check(
            "sc://host:70000",
            Err("the port must be a number from 1 to 65535"),
        );
        check("sc://[::1", Err("an IPv6 host must be closed by ]"));
    }

    #[test]
    fn display_hides_parameters() {
        let remote = Remote::parse("sc://host:443/;token=secret").unwrap();
        assert_eq!(remote.to_string(), "sc://host:443");
        assert!(!format!("{remote:?}").contains("secret"));
        let error = Remote::parse("localhost/;token=secret").unwrap_err();
        assert!(!error.to_string().contains("secret"));
    }
}
