//! [`GroupSocket`]: the one UDP socket a server-less registry (multicast, mDNS) receives and
//! sends on, joined to its group on exactly one interface.
//!
//! Every choice here is about staying where the user said: the group is joined on one
//! interface (by address or by name), datagrams leave through it (`IP_MULTICAST_IF`), and
//! with `IP_MULTICAST_ALL` off the socket hears only the groups it joined itself, not those
//! some other socket of this host joined on the same port.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// One local network interface, by one of its addresses or by its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Interface {
    /// The interface that holds this address.
    Addr(IpAddr),
    /// The interface of this name, e.g. `eth0`.
    Name(String),
}

impl Interface {
    /// Reads an `interface=` parameter: an IP address (IPv6 with or without brackets) or a
    /// Linux interface name. The error says what the text is not.
    pub fn parse(text: &str) -> Result<Interface, String> {
        let text = text.trim();
        let bare = text.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(address) => Ok(Interface::Addr(address)),
            Err(_) if is_interface_name(text) => Ok(Interface::Name(text.to_owned())),
            Err(_) => Err(format!(
                "interface {text:?} is neither an IP address nor an interface name"
            )),
        }
    }

    /// The loopback interface of the group's IP version (127.0.0.1 or ::1).
    pub fn loopback_for(group: IpAddr) -> Interface {
        Interface::Addr(match group {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        })
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interface::Addr(address) => address.fmt(f),
            Interface::Name(name) => name.fmt(f),
        }
    }
}

impl From<IpAddr> for Interface {
    fn from(address: IpAddr) -> Interface {
        Interface::Addr(address)
    }
}

impl From<Ipv4Addr> for Interface {
    fn from(address: Ipv4Addr) -> Interface {
        Interface::Addr(address.into())
    }
}

impl From<Ipv6Addr> for Interface {
    fn from(address: Ipv6Addr) -> Interface {
        Interface::Addr(address.into())
    }
}

/// Linux interface names: 1 to 15 bytes of letters, digits, `-`, `_` and `.`.
pub fn is_interface_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 15
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Where the socket binds its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindTo {
    /// The wildcard address: it also reads unicast sent to the port (multicast's unicast
    /// answers).
    Any,
    /// The group address: unicast sent to this host's port is not read (mDNS).
    Group,
}

/// Why a [`GroupSocket`] could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupSocketError {
    /// The interface is not one this machine has (with an address of the group's version).
    #[error("{reason}")]
    NoSuchInterface {
        /// The interface asked for.
        interface: Interface,
        /// What is wrong with it, a sentence.
        reason: String,
    },
    /// A socket call failed on this machine (not a peer's doing).
    #[error("cannot {what}: {source}")]
    Socket {
        /// What was being done, e.g. `join group 224.5.6.7 on interface 127.0.0.1`.
        what: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// The socket of a multicast group on one interface, and that interface.
#[derive(Debug)]
pub struct JoinedSocket {
    /// Bound, joined, non-blocking, registered with tokio.
    pub socket: UdpSocket,
    /// The interface's address of the group's IP version (the one asked for, or the first
    /// such address of the interface named).
    pub address: IpAddr,
    /// The interface's index (0 when the system did not say).
    pub index: u32,
}

/// Opens the UDP socket of a multicast group on one interface:
/// `GroupSocket::new(group, port, interface).ttl(255).bind_to(BindTo::Group).open()?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSocket {
    group: IpAddr,
    port: u16,
    interface: Interface,
    bind_to: BindTo,
    loopback: bool,
    ttl: u32,
}

impl GroupSocket {
    /// The group and port, joined on `interface`. Defaults: bound to the wildcard address,
    /// loopback on (other processes of this host hear what it sends), TTL 1.
    pub fn new(group: IpAddr, port: u16, interface: Interface) -> GroupSocket {
        GroupSocket {
            group,
            port,
            interface,
            bind_to: BindTo::Any,
            loopback: true,
            ttl: 1,
        }
    }

    /// Where the port is bound.
    pub fn bind_to(mut self, bind_to: BindTo) -> Self {
        self.bind_to = bind_to;
        self
    }

    /// Whether this host's own sockets receive what this one sends.
    pub fn loopback(mut self, loopback: bool) -> Self {
        self.loopback = loopback;
        self
    }

    /// Multicast TTL (IPv4) or hop limit (IPv6).
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Finds the interface, then creates, binds and joins the socket. Must run inside a tokio
    /// runtime.
    pub fn open(&self) -> Result<JoinedSocket, GroupSocketError> {
        let (address, index) = self.resolve(&local_interfaces()?)?;
        let socket = self.socket(address, index)?;
        Ok(JoinedSocket {
            socket,
            address,
            index,
        })
    }

    /// The interface's address of the group's version, and its index.
    fn resolve(
        &self,
        interfaces: &[if_addrs::Interface],
    ) -> Result<(IpAddr, u32), GroupSocketError> {
        let refuse = |reason: String| GroupSocketError::NoSuchInterface {
            interface: self.interface.clone(),
            reason,
        };
        let version = |ip: IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        let found = match &self.interface {
            Interface::Addr(address) => {
                if address.is_ipv4() != self.group.is_ipv4() {
                    return Err(refuse(format!(
                        "interface {address} is {} and group {} is {}: give an {} address \
                         of the interface, or its name",
                        version(*address),
                        self.group,
                        version(self.group),
                        version(self.group),
                    )));
                }
                interfaces
                    .iter()
                    .find(|i| i.ip() == *address)
                    .ok_or_else(|| {
                        refuse(format!("no local network interface has address {address}"))
                    })?
            }
            Interface::Name(name) => interfaces
                .iter()
                .find(|i| i.name == *name && i.ip().is_ipv4() == self.group.is_ipv4())
                .ok_or_else(|| {
                    refuse(format!(
                        "no local network interface named {name:?} has an {} address",
                        version(self.group)
                    ))
                })?,
        };
        Ok((found.ip(), found.index.unwrap_or(0)))
    }

    fn socket(&self, address: IpAddr, index: u32) -> Result<UdpSocket, GroupSocketError> {
        let step = |what: String| move |source| GroupSocketError::Socket { what, source };
        let on = &self.interface;
        let group = self.group;
        let domain = if group.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
            .map_err(step("create a UDP socket".into()))?;
        // Several processes of one host share the group port (other srpc handles, Java
        // processes, avahi, python-zeroconf).
        socket
            .set_reuse_address(true)
            .map_err(step("set SO_REUSEADDR".into()))?;
        socket
            .set_reuse_port(true)
            .map_err(step("set SO_REUSEPORT".into()))?;
        // Bursts must not be dropped while the receive loop is busy; a smaller buffer than
        // asked for still works, so a refusal is not an error.
        let _ = socket.set_recv_buffer_size(1 << 20);
        if group.is_ipv6() {
            socket
                .set_only_v6(true)
                .map_err(step("set IPV6_V6ONLY".into()))?;
        }
        let bound = match (self.bind_to, group) {
            (BindTo::Group, _) => SocketAddr::new(group, self.port),
            (BindTo::Any, IpAddr::V4(_)) => {
                SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), self.port)
            }
            (BindTo::Any, IpAddr::V6(_)) => {
                SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), self.port)
            }
        };
        socket
            .bind(&bound.into())
            .map_err(step(format!("bind {bound}")))?;
        match (group, address) {
            (IpAddr::V4(group), IpAddr::V4(address)) => {
                #[cfg(target_os = "linux")]
                socket
                    .set_multicast_all_v4(false)
                    .map_err(step("clear IP_MULTICAST_ALL".into()))?;
                socket
                    .join_multicast_v4(&group, &address)
                    .map_err(step(format!("join group {group} on interface {on}")))?;
                socket
                    .set_multicast_if_v4(&address)
                    .map_err(step(format!("send on interface {on}")))?;
                socket
                    .set_multicast_loop_v4(self.loopback)
                    .map_err(step("set IP_MULTICAST_LOOP".into()))?;
                socket
                    .set_multicast_ttl_v4(self.ttl)
                    .map_err(step("set IP_MULTICAST_TTL".into()))?;
            }
            (IpAddr::V6(group), IpAddr::V6(_)) => {
                #[cfg(target_os = "linux")]
                socket
                    .set_multicast_all_v6(false)
                    .map_err(step("clear IPV6_MULTICAST_ALL".into()))?;
                socket
                    .join_multicast_v6(&group, index)
                    .map_err(step(format!("join group {group} on interface {on}")))?;
                socket
                    .set_multicast_if_v6(index)
                    .map_err(step(format!("send on interface {on}")))?;
                socket
                    .set_multicast_loop_v6(self.loopback)
                    .map_err(step("set IPV6_MULTICAST_LOOP".into()))?;
                socket
                    .set_multicast_hops_v6(self.ttl)
                    .map_err(step("set IPV6_MULTICAST_HOPS".into()))?;
            }
            // `resolve` returns an address of the group's version.
            _ => {
                return Err(GroupSocketError::NoSuchInterface {
                    interface: on.clone(),
                    reason: format!("interface {on} has no address of group {group}'s version"),
                });
            }
        }
        socket
            .set_nonblocking(true)
            .map_err(step("make the socket non-blocking".into()))?;
        UdpSocket::from_std(socket.into()).map_err(step("register the socket with tokio".into()))
    }
}

fn local_interfaces() -> Result<Vec<if_addrs::Interface>, GroupSocketError> {
    if_addrs::get_if_addrs().map_err(|source| GroupSocketError::Socket {
        what: "list local network interfaces".into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_v4() -> Vec<if_addrs::Interface> {
        if_addrs::get_if_addrs()
            .unwrap()
            .into_iter()
            .filter(|i| i.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
            .collect()
    }

    #[test]
    fn parse_reads_addresses_and_names() {
        assert_eq!(
            Interface::parse("127.0.0.1"),
            Ok(Interface::Addr("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            Interface::parse("[fd77::1]"),
            Ok(Interface::Addr("fd77::1".parse().unwrap()))
        );
        assert_eq!(
            Interface::parse(" veth0 "),
            Ok(Interface::Name("veth0".into()))
        );
        let err = Interface::parse("not an interface!").unwrap_err();
        assert!(err.contains("neither an IP address"), "{err}");
        assert!(Interface::parse("sixteen-letters!").is_err());
    }

    #[test]
    fn resolve_finds_loopback_by_address_and_by_name() {
        let interfaces = loopback_v4();
        let name = interfaces[0].name.clone();
        let group: IpAddr = "239.255.0.1".parse().unwrap();
        for interface in [
            Interface::Addr(Ipv4Addr::LOCALHOST.into()),
            Interface::Name(name),
        ] {
            let (address, _) = GroupSocket::new(group, 1, interface.clone())
                .resolve(&interfaces)
                .unwrap();
            assert_eq!(address, IpAddr::V4(Ipv4Addr::LOCALHOST), "{interface}");
        }
    }

    #[test]
    fn resolve_refuses_what_this_machine_lacks_and_mixed_versions() {
        let interfaces = loopback_v4();
        let group: IpAddr = "239.255.0.1".parse().unwrap();
        for (interface, needle) in [
            (
                Interface::Addr("192.0.2.1".parse().unwrap()),
                "no local network interface has address 192.0.2.1",
            ),
            (Interface::Name("nosuch0".into()), "named \"nosuch0\""),
            (
                Interface::Addr("::1".parse().unwrap()),
                "is IPv6 and group 239.255.0.1 is IPv4",
            ),
        ] {
            let err = GroupSocket::new(group, 1, interface.clone())
                .resolve(&interfaces)
                .unwrap_err();
            assert!(
                matches!(&err, GroupSocketError::NoSuchInterface { interface: i, .. } if *i == interface)
            );
            assert!(err.to_string().contains(needle), "{interface}: {err}");
        }
    }

    #[tokio::test]
    async fn two_sockets_of_one_group_on_loopback_hear_each_other() {
        // Loopback only; an administratively scoped group; port 0 is refused by nobody but
        // would give each socket its own port, so both bind one fixed unusual port.
        let group: IpAddr = "239.255.91.17".parse().unwrap();
        let open = || {
            GroupSocket::new(group, 47_913, Interface::Addr(Ipv4Addr::LOCALHOST.into()))
                .bind_to(BindTo::Group)
                .open()
                .unwrap()
        };
        let (a, b) = (open(), open());
        assert_eq!(a.address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        a.socket
            .send_to(b"hello", SocketAddr::new(group, 47_913))
            .await
            .unwrap();
        let mut buffer = [0u8; 16];
        let (n, from) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            b.socket.recv_from(&mut buffer),
        )
        .await
        .expect("the datagram arrives within 5 s")
        .unwrap();
        assert_eq!(&buffer[..n], b"hello");
        assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_socket_hears_only_the_group_it_joined() {
        // Two groups on one port, both sockets bound to the wildcard address: with
        // IP_MULTICAST_ALL on (Linux's default) `mine` would also read `theirs`' group.
        let port = 47_914;
        let (mine, theirs): (IpAddr, IpAddr) = (
            "239.255.91.18".parse().unwrap(),
            "239.255.91.19".parse().unwrap(),
        );
        let open = |group| {
            GroupSocket::new(group, port, Interface::Addr(Ipv4Addr::LOCALHOST.into()))
                .open()
                .unwrap()
        };
        let (a, b) = (open(mine), open(theirs));
        a.socket
            .send_to(b"other group", SocketAddr::new(theirs, port))
            .await
            .unwrap();
        let mut buffer = [0u8; 16];
        let deadline = std::time::Duration::from_secs(5);
        let (n, _) = tokio::time::timeout(deadline, b.socket.recv_from(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buffer[..n], b"other group");
        // Sent after the first: if `mine` had read the other group, that came first.
        b.socket
            .send_to(b"my group", SocketAddr::new(mine, port))
            .await
            .unwrap();
        let (n, _) = tokio::time::timeout(deadline, a.socket.recv_from(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buffer[..n], b"my group");
    }
}
