//! Where deliveries may go: the operator's allow-list (`--webhook-allow`:
//! host names, `*.` wildcards and CIDRs), checked when a caller names a
//! URL and again at every connection. A host name outside the list is
//! allowed only when every address it resolves to is in a listed CIDR, and
//! the connection then goes only to such an address (the resolver hands
//! out nothing else, so a name that resolves differently later, DNS
//! rebinding, still reaches nothing the operator did not allow). Redirects
//! are not followed and no proxy is used (see `delivery`).

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
    sync::Arc,
};

use reqwest::Url;

/// Longest callback URL accepted.
pub const MAX_URL_CHARS: usize = 2048;

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A host name, lower case; `*.example.com` matches every name below
    /// `example.com` (not the name itself).
    Host(String),
    /// An address block.
    Net { base: IpAddr, prefix: u8 },
}

impl FromStr for Entry {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let invalid = || {
            format!(
                "`{text}` is not a host name (`hooks.example.com`, `*.example.com`) or an address block (`10.0.0.0/8`, `192.0.2.7`, `fd00::/8`)"
            )
        };
        if let Some((base, prefix)) = text.split_once('/') {
            let written: IpAddr = base.parse().map_err(|_| invalid())?;
            let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
            let base = written.to_canonical();
            // An IPv4-mapped block (`::ffff:10.0.0.0/104`) is its IPv4
            // block: its prefix counts the 96 bits of the mapping.
            let prefix = match (written, base) {
                (IpAddr::V6(_), IpAddr::V4(_)) => prefix.checked_sub(96).ok_or_else(invalid)?,
                _ => prefix,
            };
            if prefix > if base.is_ipv4() { 32 } else { 128 } {
                return Err(invalid());
            }
            return Ok(Entry::Net { base, prefix });
        }
        if let Ok(ip) = text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            let ip = ip.to_canonical();
            return Ok(Entry::Net {
                base: ip,
                prefix: if ip.is_ipv4() { 32 } else { 128 },
            });
        }
        let name = text.strip_prefix("*.").unwrap_or(text);
        let valid_name = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid_name {
            return Err(invalid());
        }
        Ok(Entry::Host(text.to_ascii_lowercase()))
    }
}

/// Addresses a block must name to allow them: a catch-all such as
/// `0.0.0.0/0` does not reach this host (loopback), the cloud's metadata
/// service and other link-local neighbours, or the unspecified address.
/// The prefix of the special range `ip` is in: a block allows it only when
/// it is no wider than that range.
fn special_range(ip: IpAddr) -> Option<u8> {
    match ip {
        IpAddr::V4(ip) if ip.is_loopback() || ip.octets()[0] == 0 => Some(8),
        IpAddr::V4(ip) if ip.is_link_local() => Some(16),
        IpAddr::V6(ip) if ip.is_loopback() || ip.is_unspecified() => Some(128),
        IpAddr::V6(ip) if (ip.segments()[0] & 0xffc0) == 0xfe80 => Some(10),
        _ => None,
    }
}

impl Entry {
    fn allows_ip(&self, ip: IpAddr) -> bool {
        let Entry::Net { base, prefix } = self else {
            return false;
        };
        let ip = ip.to_canonical();
        if special_range(ip).is_some_and(|range| *prefix < range) {
            return false;
        }
        match (base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32u32.saturating_sub(u32::from(*prefix)))
                    .unwrap_or(0);
                u32::from(*base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128u32.saturating_sub(u32::from(*prefix)))
                    .unwrap_or(0);
                u128::from(*base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    fn allows_host(&self, host: &str) -> bool {
        match self {
            Entry::Host(pattern) => match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .strip_suffix(parent)
                    .is_some_and(|below| below.len() > 1 && below.ends_with('.')),
                None => host == pattern,
            },
            Entry::Net { .. } => false,
        }
    }
}

/// The operator's allow-list of callback targets. Empty: no callback is
/// allowed, and webhooks are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Entry>,
}

impl AllowList {
    /// The list of `--webhook-allow` entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        let entries = entries
            .iter()
            .flat_map(|entry| entry.as_ref().split(','))
            .filter(|entry| !entry.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Entry>, String>>()?;
        Ok(AllowList { entries })
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether connections to `ip` are allowed.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.entries.iter().any(|entry| entry.allows_ip(ip))
    }

    /// Whether the host name itself is listed (then whatever it resolves
    /// to is allowed).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = normal_host(host);
        self.entries.iter().any(|entry| entry.allows_host(&host))
    }

    /// The addresses of `host` a connection may go to: all of them when the
    /// name is listed, else those in a listed block. Errs when there are
    /// none, or the name does not resolve.
    pub async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, TargetError> {
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| TargetError::Unresolvable(host.to_owned()))?
            .collect();
        if resolved.is_empty() {
            return Err(TargetError::Unresolvable(host.to_owned()));
        }
        if self.allows_host(host) {
            return Ok(resolved);
        }
        let allowed: Vec<SocketAddr> = resolved
            .into_iter()
            .filter(|address| self.allows_ip(address.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(TargetError::NotAllowed(host.to_owned()));
        }
        Ok(allowed)
    }

    /// Checks a callback URL a caller names: `http` or `https`, a host, no
    /// user name or password, no fragment, and a target the list allows
    /// (a host name not listed must resolve, and only to allowed
    /// addresses). The URL as it will be called.
    pub async fn check_url(&self, raw: &str) -> Result<Url, TargetError> {
        let url = parse_url(raw)?;
        if self.is_empty() {
            return Err(TargetError::NoneAllowed);
        }
        match url.host() {
            Some(url::Host::Domain(host)) => {
                if !self.allows_host(host) {
                    let port = url.port_or_known_default().unwrap_or(443);
                    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                        .await
                        .map_err(|_| TargetError::Unresolvable(host.to_owned()))?
                        .collect();
                    if resolved.is_empty()
                        || !resolved.iter().all(|address| self.allows_ip(address.ip()))
                    {
                        return Err(TargetError::NotAllowed(host.to_owned()));
                    }
                }
            }
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            None => return Err(TargetError::Invalid("it has no host".into())),
        }
        Ok(url)
    }

    /// Checks the address of a URL whose host is an IP address (the
    /// resolver is not asked for those).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if self.allows_ip(ip) {
            Ok(())
        } else {
            Err(TargetError::NotAllowed(ip.to_string()))
        }
    }
}

/// A host name as the list compares it: lower case, without a final dot.
fn normal_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Reads a callback URL, with the rules every target has whatever the list.
pub fn parse_url(raw: &str) -> Result<Url, TargetError> {
    if raw.len() > MAX_URL_CHARS {
        return Err(TargetError::Invalid(format!(
            "it is longer than {MAX_URL_CHARS} characters"
        )));
    }
    let url = Url::parse(raw).map_err(|e| TargetError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Invalid(
            "its scheme must be http or https".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Invalid(
            "it must not hold a user name or password (deliveries are signed instead)".into(),
        ));
    }
    if url.fragment().is_some() {
        return Err(TargetError::Invalid(
            "it must not have a fragment (`#...`)".into(),
        ));
    }
    if url.host().is_none() {
        return Err(TargetError::Invalid("it has no host".into()));
    }
    Ok(url)
}

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL the gateway calls.
    #[error("the URL is not valid: {0}")]
    Invalid(String),
    /// The operator allows no callback target.
    #[error("this gateway allows no webhook targets (its operator sets them with --webhook-allow)")]
    NoneAllowed,
    /// The host (or an address it resolves to) is outside the allow-list.
    #[error("`{0}` is not among the webhook targets this gateway's operator allows")]
    NotAllowed(String),
    /// The host name does not resolve. Told as a target not allowed: the
    /// difference would tell callers which names resolve in the gateway's
    /// network.
    #[error("`{0}` is not among the webhook targets this gateway's operator allows")]
    Unresolvable(String),
}

/// Resolves host names for deliveries, handing out only the addresses the
/// allow-list allows (see [`AllowList::addresses`]).
#[derive(Debug, Clone)]
pub struct AllowListResolver(pub Arc<AllowList>);

impl reqwest::dns::Resolve for AllowListResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = allow.addresses(&host, 0).await?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).expect("a valid list")
    }

    #[test]
    fn blocks_allow_the_addresses_inside_them_only() {
        let allow = list(&["10.1.0.0/16", "192.0.2.7", "fd00::/8"]);
        assert!(allow.allows_ip("10.1.200.3".parse().unwrap()));
        assert!(!allow.allows_ip("10.2.0.1".parse().unwrap()));
        assert!(allow.allows_ip("192.0.2.7".parse().unwrap()));
        assert!(!allow.allows_ip("192.0.2.8".parse().unwrap()));
        assert!(allow.allows_ip("fd12::1".parse().unwrap()));
        assert!(!allow.allows_ip("fe80::1".parse().unwrap()));
        assert!(
            allow.allows_ip("::ffff:10.1.0.1".parse().unwrap()),
            "an IPv4-mapped address is its IPv4 address"
        );
        assert!(!allow.allows_ip("169.254.169.254".parse().unwrap()));
        assert!(list(&["0.0.0.0/0"]).allows_ip("203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn an_ipv4_mapped_block_is_its_ipv4_block() {
        let allow = list(&["::ffff:10.0.0.0/104"]);
        assert!(allow.allows_ip("10.200.0.1".parse().unwrap()));
        assert!(!allow.allows_ip("11.0.0.1".parse().unwrap()));
        assert!(!allow.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(
            AllowList::parse(&["::ffff:10.0.0.0/95"]).is_err(),
            "wider than IPv4"
        );
    }

    #[test]
    fn a_catch_all_block_leaves_out_loopback_link_local_and_unspecified_addresses() {
        let everything = list(&["0.0.0.0/0", "::/0"]);
        assert!(everything.allows_ip("203.0.113.9".parse().unwrap()));
        assert!(everything.allows_ip("2001:db8::1".parse().unwrap()));
        for special in [
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert!(!everything.allows_ip(special.parse().unwrap()), "{special}");
        }
        assert!(
            list(&["127.0.0.0/8"]).allows_ip("127.0.0.1".parse().unwrap()),
            "named: allowed"
        );
        assert!(list(&["169.254.169.254"]).allows_ip("169.254.169.254".parse().unwrap()));
        assert!(list(&["169.254.0.0/16"]).allows_ip("169.254.169.254".parse().unwrap()));
        assert!(list(&["::1"]).allows_ip("::1".parse().unwrap()));
        for (wide, special) in [
            ("169.0.0.0/8", "169.254.169.254"),
            ("::/10", "::1"),
            ("fe80::/9", "fe80::1"),
        ] {
            assert!(
                !list(&[wide]).allows_ip(special.parse().unwrap()),
                "{wide} is wider than {special}'s range"
            );
        }
    }

    #[tokio::test]
    async fn an_address_written_oddly_is_the_address_it_means() {
        let loopback = list(&["127.0.0.0/8"]);
        let elsewhere = list(&["10.0.0.0/8"]);
        for odd in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://[::ffff:7f00:1]/",
        ] {
            assert!(loopback.check_url(odd).await.is_ok(), "{odd}");
            assert!(
                matches!(
                    elsewhere.check_url(odd).await,
                    Err(TargetError::NotAllowed(_))
                ),
                "{odd}"
            );
        }
    }

    #[test]
    fn names_match_exactly_or_below_a_wildcard() {
        let allow = list(&["hooks.example.com", "*.portal.example"]);
        assert!(allow.allows_host("hooks.example.com"));
        assert!(allow.allows_host("HOOKS.example.com."));
        assert!(!allow.allows_host("evil-hooks.example.com"));
        assert!(!allow.allows_host("hooks.example.com.evil.net"));
        assert!(allow.allows_host("a.portal.example"));
        assert!(allow.allows_host("a.b.portal.example"));
        assert!(
            !allow.allows_host("portal.example"),
            "the wildcard's parent"
        );
        assert!(!allow.allows_host("xportal.example"));
    }

    #[test]
    fn entries_that_are_neither_names_nor_blocks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "exa mple.com",
            "*.",
            "a..b",
            "http://x",
        ] {
            assert!(AllowList::parse(&[bad]).is_err(), "{bad}");
        }
        assert_eq!(
            list(&["a.example, 10.0.0.0/8"]).entries.len(),
            2,
            "comma-separated"
        );
        assert!(list(&[]).is_empty());
    }

    #[tokio::test]
    async fn a_url_is_checked_for_its_form_and_its_target() {
        let allow = list(&["127.0.0.0/8", "hooks.example.com"]);
        assert!(allow.check_url("http://127.0.0.1:9000/hook").await.is_ok());
        assert!(
            allow.check_url("https://hooks.example.com/x").await.is_ok(),
            "listed: not resolved"
        );
        assert!(
            allow.check_url("http://localhost:9000/").await.is_ok(),
            "resolves to loopback"
        );
        assert_eq!(
            allow.check_url("http://10.0.0.1/").await,
            Err(TargetError::NotAllowed("10.0.0.1".into()))
        );
        assert!(matches!(
            allow.check_url("http://[::1]/").await,
            Err(TargetError::NotAllowed(_))
        ));
        for bad in [
            "ftp://127.0.0.1/",
            "http://user:pw@127.0.0.1/",
            "http://127.0.0.1/#frag",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(allow.check_url(bad).await, Err(TargetError::Invalid(_))),
                "{bad}"
            );
        }
        assert_eq!(
            list(&[]).check_url("http://127.0.0.1/").await,
            Err(TargetError::NoneAllowed)
        );
    }

    #[tokio::test]
    async fn the_resolver_hands_out_only_allowed_addresses() {
        let loopback_only = list(&["127.0.0.0/8"]);
        let addresses = loopback_only
            .addresses("localhost", 80)
            .await
            .expect("resolves");
        assert!(!addresses.is_empty());
        assert!(
            addresses
                .iter()
                .all(|a| a.ip().is_loopback() && a.is_ipv4())
        );
        assert_eq!(
            list(&["10.0.0.0/8"]).addresses("localhost", 80).await,
            Err(TargetError::NotAllowed("localhost".into()))
        );
    }
}
