//! Where a plugin's connections may land, decided on addresses.
//!
//! A name is resolved once, each address is checked, and the connection
//! goes to exactly the checked addresses (the HTTP client's resolver and
//! the TCP probe both resolve here), so a name cannot rebind between the
//! check and the connect. For a name:
//!
//! - cloud metadata services ([`METADATA`]: 169.254.169.254, Alibaba's
//!   100.100.100.200, AWS's fd00:ec2::254, Azure's 168.63.129.16, …) are
//!   refused always, even to a grant that names one literally;
//! - link-local (169.254.0.0/16, fe80::/10), unspecified, multicast,
//!   broadcast and reserved addresses are refused; a grant reaches one only
//!   by naming that IP literally;
//! - loopback is admitted for `localhost` (and `*.localhost`) alone;
//! - loopback and private ranges (10/8, 172.16/12, 192.168/16, 100.64/10,
//!   fc00::/7) are refused unless the operator sets
//!   `plugins.capabilities.<http|tcp>.allow_private_names = true`.
//!
//! An IP literal in a URL or target is never resolved: the allowlist
//! already required the grant to name exactly that address (metadata
//! services aside). IPv6 addresses that carry an IPv4 one (mapped,
//! compatible, NAT64 `64:ff9b::/96` and the local `64:ff9b:1::/48`, 6to4)
//! are judged by the IPv4 address they reach.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What an address is, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A cloud provider's instance metadata (credentials live there).
    Metadata,
    Public,
    Loopback,
    Private,
    LinkLocal,
    Unspecified,
    Multicast,
    Reserved,
}

impl Class {
    pub fn of(ip: IpAddr) -> Class {
        if is_metadata(ip) {
            return Class::Metadata;
        }
        match ip {
            IpAddr::V4(v4) => of_v4(v4),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => of_v4(v4),
                None => of_v6(v6),
            },
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Class::Metadata => "a cloud metadata service, which no plugin reaches",
            Class::Public => "a public address",
            Class::Loopback => "a loopback address",
            Class::Private => "a private-network address",
            Class::LinkLocal => "a link-local address (where cloud metadata services answer)",
            Class::Unspecified => "the unspecified address",
            Class::Multicast => "a multicast address",
            Class::Reserved => "a reserved or broadcast address",
        }
    }
}

fn of_v4(ip: Ipv4Addr) -> Class {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Class::Unspecified
    } else if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_link_local() {
        Class::LinkLocal
    } else if ip.is_multicast() {
        Class::Multicast
    } else if ip.is_broadcast() || a >= 240 {
        Class::Reserved
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Class::Private
    } else {
        Class::Public
    }
}

fn of_v6(ip: Ipv6Addr) -> Class {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Class::Unspecified
    } else if ip.is_loopback() {
        Class::Loopback
    } else if first & 0xffc0 == 0xfe80 {
        Class::LinkLocal
    } else if ip.is_multicast() {
        Class::Multicast
    } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfec0 {
        Class::Private
    } else {
        Class::Public
    }
}

/// Cloud instance metadata services (and the hosts beside them that hand
/// out credentials or configuration): AWS, GCP, Azure, OpenStack and
/// DigitalOcean at 169.254.169.254, AWS ECS task metadata 169.254.170.2,
/// AWS's IPv6 IMDS fd00:ec2::254, Alibaba 100.100.100.200, Azure's
/// WireServer 168.63.129.16, Oracle's older 192.0.0.192.
pub const METADATA: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 253)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 123)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x253)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)),
];

/// Whether `ip` (or the IPv4 address it carries) is a metadata service.
pub fn is_metadata(ip: IpAddr) -> bool {
    let v4 = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    METADATA.contains(&ip) || v4.is_some_and(|v4| METADATA.contains(&v4))
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible,
/// NAT64 (`64:ff9b::/96`, and the local-use `64:ff9b:1::/48` with the
/// address in its last 32 bits) or 6to4 (`2002:AABB:CCDD::/48`) address,
/// which reach that IPv4 host.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    let nat64_local = s[0] == 0x64 && s[1] == 0xff9b && s[2] == 0x0001;
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_loopback() && !ip.is_unspecified();
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    (nat64 || nat64_local || compatible).then_some(low)
}

/// The operator's side of the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Names may resolve to loopback and private ranges.
    pub allow_private_names: bool,
    /// The setting that says so, for the refusal (`plugins.capabilities.http`).
    pub key: &'static str,
}

/// A name resolved where the policy does not admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl AddressPolicy {
    /// Checks every address `name` resolved to; one refused address refuses
    /// the name (a connection must never be able to land there).
    pub fn check(&self, name: &str, addrs: &[SocketAddr]) -> Result<(), Refused> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let localhost = name == "localhost" || name.ends_with(".localhost");
        for addr in addrs {
            let class = Class::of(addr.ip());
            let admitted = match class {
                Class::Public => !localhost,
                Class::Loopback => localhost || self.allow_private_names,
                Class::Private => self.allow_private_names,
                _ => false,
            };
            if !admitted {
                let how = match class {
                    Class::Loopback | Class::Private => format!(
                        "names reach it only with {}.allow_private_names = true in the deployment config, or grant the IP itself",
                        self.key
                    ),
                    Class::Public => "localhost must resolve to loopback".to_string(),
                    Class::Metadata => "nothing reaches it".to_string(),
                    _ => "only a grant that names this IP literally reaches it".to_string(),
                };
                return Err(Refused(format!(
                    "denied: {name} resolves to {}, {}; {how}",
                    addr.ip(),
                    class.describe()
                )));
            }
        }
        Ok(())
    }

    /// Resolves `name` once and checks every address; the result is what
    /// the connection may use, and all of it.
    pub async fn resolve(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>() {
            literal(ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let host = name.to_string();
        let addrs = bounded_lookup(&LOOKUPS, move || {
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)).map(Iterator::collect)
        })
        .await
        .map_err(|e| Refused(format!("cannot resolve {name}: {e}")))?;
        if addrs.is_empty() {
            return Err(Refused(format!("{name} resolves to no address")));
        }
        self.check(name, &addrs)?;
        Ok(addrs)
    }
}

/// Name lookups plugins may have running at once. A lookup is the
/// system resolver on a blocking thread, which a call's deadline cannot
/// stop: a name whose DNS never answers holds its thread until the
/// resolver gives up (10–30 s). Bounded, a plugin that asks for many such
/// names waits within its own deadline instead of taking the threads the
/// host's own work (plugin calls among it) runs on.
const CONCURRENT_LOOKUPS: usize = 16;

static LOOKUPS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| {
        std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_LOOKUPS))
    });

/// Runs `lookup` on a blocking thread once `slots` has room; the slot is
/// held by the thread, not by the waiting future, so a lookup its caller
/// stopped waiting for still counts until it ends.
async fn bounded_lookup(
    slots: &std::sync::Arc<tokio::sync::Semaphore>,
    lookup: impl FnOnce() -> std::io::Result<Vec<SocketAddr>> + Send + 'static,
) -> std::io::Result<Vec<SocketAddr>> {
    let slot = std::sync::Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        lookup()
    })
    .await
    .map_err(std::io::Error::other)?
}

/// An IP literal a grant names: anything but a metadata service.
pub fn literal(ip: IpAddr) -> Result<(), Refused> {
    if is_metadata(ip) {
        return Err(Refused(format!(
            "denied: {ip} is {}, even when a grant names it",
            Class::Metadata.describe()
        )));
    }
    Ok(())
}

/// The HTTP client's resolver: every name it connects to passes
/// [`AddressPolicy::resolve`], and it connects to what that returned.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver(pub AddressPolicy);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let addrs = policy.resolve(name.as_str(), 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The policy's refusal somewhere in an error's chain.
pub fn refusal_in(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return Some(refused.0.clone());
        }
        cause = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_keeps_its_slot_until_it_ends_even_when_nobody_waits() {
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(2));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = std::sync::Arc::new(std::sync::Mutex::new(hold));
        // Two lookups that hang (a DNS server that never answers), each
        // given up by its caller after 20 ms.
        for _ in 0..2 {
            let hold = std::sync::Arc::clone(&hold);
            let waited = io.block_on(async {
                tokio::time::timeout(
                    std::time::Duration::from_millis(20),
                    bounded_lookup(&slots, move || {
                        let _ = hold.lock().unwrap().recv();
                        Ok(Vec::new())
                    }),
                )
                .await
            });
            assert!(waited.is_err(), "the hanging lookup answered");
        }
        // Their threads still run: no slot for a third, which waits.
        assert_eq!(slots.available_permits(), 0);
        let third = io.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_millis(50),
                bounded_lookup(&slots, || Ok(Vec::new())),
            )
            .await
        });
        assert!(third.is_err(), "a third lookup ran past the bound");
        // Once the hung lookups end, their slots come back.
        release.send(()).unwrap();
        release.send(()).unwrap();
        let answered = io.block_on(bounded_lookup(&slots, || Ok(Vec::new())));
        assert!(answered.is_ok());
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while slots.available_permits() < 2 && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(slots.available_permits(), 2);
    }

    fn at(ip: &str) -> Vec<SocketAddr> {
        vec![SocketAddr::new(ip.parse().unwrap(), 80)]
    }

    const STRICT: AddressPolicy = AddressPolicy {
        allow_private_names: false,
        key: "plugins.capabilities.http",
    };
    const OPEN: AddressPolicy = AddressPolicy {
        allow_private_names: true,
        key: "plugins.capabilities.http",
    };

    #[test]
    fn classes() {
        for (ip, class) in [
            ("169.254.169.254", Class::Metadata),
            ("169.254.1.1", Class::LinkLocal),
            ("fe80::1", Class::LinkLocal),
            ("::ffff:169.254.169.254", Class::Metadata),
            ("64:ff9b::a9fe:a9fe", Class::Metadata),
            ("64:ff9b:1::a9fe:a9fe", Class::Metadata),
            ("64:ff9b:1::a9fe:101", Class::LinkLocal),
            ("64:ff9b:1::7f00:1", Class::Loopback),
            ("2002:a9fe:a9fe::1", Class::Metadata),
            ("2002:0a00:0001::1", Class::Private),
            ("100.100.100.200", Class::Metadata),
            ("fd00:ec2::254", Class::Metadata),
            ("168.63.129.16", Class::Metadata),
            ("0.0.0.0", Class::Unspecified),
            ("::", Class::Unspecified),
            ("224.0.0.1", Class::Multicast),
            ("ff02::1", Class::Multicast),
            ("255.255.255.255", Class::Reserved),
            ("127.0.0.1", Class::Loopback),
            ("::1", Class::Loopback),
            ("::ffff:127.0.0.1", Class::Loopback),
            ("10.1.2.3", Class::Private),
            ("172.20.0.1", Class::Private),
            ("192.168.1.1", Class::Private),
            ("100.64.0.1", Class::Private),
            ("fd00::1", Class::Private),
            ("93.184.216.34", Class::Public),
            ("2606:4700::1111", Class::Public),
        ] {
            assert_eq!(Class::of(ip.parse().unwrap()), class, "{ip}");
        }
    }

    #[test]
    fn names_never_reach_metadata_even_when_the_operator_opens_private() {
        for policy in [STRICT, OPEN] {
            let err = policy
                .check("api.example.com", &at("169.254.169.254"))
                .unwrap_err();
            assert!(err.0.contains("169.254.169.254"), "{err}");
            assert!(err.0.contains("metadata"), "{err}");
            assert!(!err.0.contains("names this IP literally"), "{err}");
            assert!(policy.check("x.example.com", &at("0.0.0.0")).is_err());
            assert!(policy.check("x.example.com", &at("ff02::1")).is_err());
        }
    }

    #[test]
    fn private_names_need_the_operator() {
        let err = STRICT.check("auth.internal", &at("10.0.0.5")).unwrap_err();
        assert!(
            err.0
                .contains("plugins.capabilities.http.allow_private_names"),
            "{err}"
        );
        assert!(STRICT.check("vm", &at("127.0.0.1")).is_err());
        assert!(OPEN.check("auth.internal", &at("10.0.0.5")).is_ok());
        assert!(STRICT.check("localhost", &at("127.0.0.1")).is_ok());
        assert!(STRICT.check("localhost", &at("::1")).is_ok());
        assert!(
            STRICT
                .check("api.example.com", &at("93.184.216.34"))
                .is_ok()
        );
        // One bad address among good ones refuses the name.
        let mixed = [at("93.184.216.34"), at("169.254.169.254")].concat();
        assert!(OPEN.check("api.example.com", &mixed).is_err());
    }

    /// Metadata services count as neither private nor public: no operator
    /// setting and no literal grant reaches them.
    #[test]
    fn metadata_services_are_refused_always() {
        for ip in [
            "100.100.100.200",
            "fd00:ec2::254",
            "169.254.169.254",
            "168.63.129.16",
        ] {
            assert!(OPEN.check("metadata.internal", &at(ip)).is_err(), "{ip}");
            assert!(literal(ip.parse().unwrap()).is_err(), "{ip}");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let refused = rt
            .block_on(OPEN.resolve("100.100.100.200", 80))
            .unwrap_err();
        assert!(refused.0.contains("metadata"), "{refused}");
        let refused = rt
            .block_on(OPEN.resolve("[fd00:ec2::254]", 80))
            .unwrap_err();
        assert!(refused.0.contains("metadata"), "{refused}");
        assert!(literal("10.0.0.1".parse().unwrap()).is_ok());
    }
}
