//! The reader of an allowlisted container's refused connections
//! (ts/network/egress.ts): its chain logs each packet it refuses, rate-limited,
//! to an NFLOG group (`-j NFLOG --nflog-group G`), and the kernel's
//! nfnetlink_log hands each to the one NETLINK_NETFILTER socket bound to that
//! group. This module binds a free group of tsbox's range, asks for the first
//! bytes of each packet, and turns each into a destination: protocol, IPv4
//! address, port (TCP, UDP) or ICMP type.
//!
//! What arrives was written by a container: every length is checked against
//! what is there, and a message that does not add up is dropped, never trusted
//! and never a panic.
//!
//! The socket is bound to one group at a time (the kernel gives a group to one
//! socket: a second bind is EPERM for another socket's group), so the group is
//! this reader's for as long as it lives; it is unbound in `close()` and, in
//! any case, when the descriptor closes (the kernel's NETLINK_URELEASE).
//!
//! An ordinary user's container (pasta) keeps its allowlist's rules in its own
//! network namespace, whose NFLOG groups are that namespace's: its reader's
//! socket is made there (`bind_in`, see `socket_in`), and bound from here,
//! where its owner is capable over it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use nix::errno::Errno;
use tokio::io::unix::AsyncFd;

// <linux/netfilter/nfnetlink.h>, <linux/netfilter/nfnetlink_log.h>
const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_CFG_CMD_UNBIND: u8 = 2;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_PAYLOAD: u16 = 9;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLA_HDRLEN: usize = 4;
/// The nla_type bits that are flags, not the type (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;
const AF_INET: u8 = 2;

/// Bytes of each packet asked for: an IPv4 header with options (60) and the
/// first 8 bytes of TCP, UDP or ICMP.
pub const COPY_RANGE: u32 = 68;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One refused packet: IP protocol number, destination, and the TCP/UDP
/// destination port or the ICMP type where the bytes hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub protocol: u8,
    pub address: [u8; 4],
    pub port: Option<u16>,
    pub icmp_type: Option<u8>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ne32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The destination of an IPv4 packet (as much of it as was copied).
pub fn parse_ipv4(p: &[u8]) -> Option<Refused> {
    let first = *p.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || p.len() < 20 {
        return None;
    }
    let protocol = p[9];
    let address: [u8; 4] = p.get(16..20)?.try_into().ok()?;
    // A fragment after the first carries no header of its protocol.
    let first_fragment = be16(p, 6)? & 0x1fff == 0;
    let l4 = if first_fragment { p.get(ihl..) } else { None };
    let (port, icmp_type) = match (protocol, l4) {
        (6 | 17, Some(l4)) => (be16(l4, 2), None),
        (1, Some(l4)) => (None, l4.first().copied()),
        _ => (None, None),
    };
    Some(Refused {
        protocol,
        address,
        port,
        icmp_type,
    })
}

/// The attributes after a message's nfgenmsg: (type, value), stopping at the
/// first one whose length does not fit.
fn attributes(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(ne16(b, 0)?);
        let kind = ne16(b, 2)? & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > b.len() {
            return None;
        }
        let value = &b[NLA_HDRLEN..len];
        b = b.get(align4(len)..).unwrap_or(&[]);
        Some((kind, value))
    })
}

/// The refused packet of one NFULNL_MSG_PACKET message's body (nfgenmsg and
/// attributes), when it is IPv4 and from `group`.
fn parse_packet(body: &[u8], group: u16) -> Option<Refused> {
    if body.len() < NFGENMSG_LEN || body[0] != AF_INET || be16(body, 2)? != group {
        return None;
    }
    let (_, payload) = attributes(&body[NFGENMSG_LEN..]).find(|(kind, _)| *kind == NFULA_PAYLOAD)?;
    parse_ipv4(payload)
}

/// The refused packets in one datagram read from the socket (one or more
/// netlink messages); whatever does not add up is left out.
pub fn parse_datagram(mut b: &[u8], group: u16) -> Vec<Refused> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDRLEN {
        let Some(len) = ne32(b, 0).and_then(|l| usize::try_from(l).ok()) else {
            break;
        };
        if len < NLMSG_HDRLEN || len > b.len() {
            break;
        }
        let kind = ne16(b, 4).unwrap_or(0);
        if kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET {
            if let Some(r) = parse_packet(&b[NLMSG_HDRLEN..len], group) {
                out.push(r);
            }
        }
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

/// A config message for `group`: nlmsghdr, nfgenmsg, then `attrs` (type, value).
fn config_message(group: u16, seq: u32, ack: bool, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; NLMSG_HDRLEN];
    m.extend_from_slice(&[0, 0]); // AF_UNSPEC, NFNETLINK_V0
    m.extend_from_slice(&group.to_be_bytes());
    for (kind, value) in attrs {
        let len = NLA_HDRLEN + value.len();
        m.extend_from_slice(&(len as u16).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(value);
        m.resize(align4(m.len()), 0);
    }
    let total = m.len() as u32;
    m[0..4].copy_from_slice(&total.to_ne_bytes());
    m[4..6].copy_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
    let flags = libc::NLM_F_REQUEST as u16 | if ack { libc::NLM_F_ACK as u16 } else { 0 };
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

/// The errno of the kernel's answer to message `seq` (0: done), from one datagram.
fn ack_of(b: &[u8], seq: u32) -> Option<i32> {
    let len = usize::try_from(ne32(b, 0)?).ok()?;
    if len < NLMSG_HDRLEN + 4 || len > b.len() || ne16(b, 4)? != NLMSG_ERROR || ne32(b, 8)? != seq {
        return None;
    }
    Some(-i32::from_ne_bytes(b.get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)?.try_into().ok()?))
}

fn send(fd: RawFd, m: &[u8]) -> std::result::Result<(), Errno> {
    // SAFETY: `m` is a live buffer of m.len() bytes; the kernel (portid 0) is
    // the default destination of an unconnected netlink socket.
    let r = unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), 0) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn recv(fd: RawFd, buf: &mut [u8], flags: i32) -> std::result::Result<usize, Errno> {
    // SAFETY: `buf` is writable for buf.len() bytes.
    let r = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(r as usize)
}

/// Sends `m` (with NLM_F_ACK, seq `seq`) on the blocking socket and waits for its answer.
fn request(fd: RawFd, m: &[u8], seq: u32) -> std::result::Result<(), Errno> {
    send(fd, m)?;
    let mut buf = [0u8; 512];
    loop {
        let n = match recv(fd, &mut buf, 0) {
            Err(Errno::EINTR) => continue,
            r => r?,
        };
        match ack_of(&buf[..n], seq) {
            Some(0) => return Ok(()),
            Some(e) => return Err(Errno::from_raw(e)),
            None => continue,
        }
    }
}

fn err(what: &str, e: Errno) -> Error {
    Error::new(
        Status::GenericFailure,
        format!("{what}: {} ({})", e.desc(), tsbox_core::errno_name(e as i32)),
    )
}

/// A NETLINK_NETFILTER socket of this process's network namespace.
fn socket_here() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) };
    if raw < 0 {
        return Err(err("socket(AF_NETLINK, NETLINK_NETFILTER)", Errno::last()));
    }
    // SAFETY: `raw` is a descriptor we just made and nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A NETLINK_NETFILTER socket of the network namespace `netns`, owned by
/// the user namespace `userns` (tsbox_core::nssocket): an ordinary user's
/// container's. Binding its group is then a message of this process, which,
/// as the owner of that user namespace, holds CAP_NET_ADMIN over it (what
/// nfnetlink checks, beside the capability of the socket's maker).
fn socket_in(userns: &str, netns: &str) -> Result<OwnedFd> {
    tsbox_core::nssocket::socket_in(userns, netns, libc::AF_NETLINK, libc::SOCK_RAW, NETLINK_NETFILTER).map_err(|e| {
        let errno = e.errno();
        err(&e.to_string(), errno)
    })
}

/// Binds a free group of `first..first+count` on socket `fd`, trying from
/// `start` on: the socket, and its group.
fn bind_free_group(fd: OwnedFd, first: u16, count: u16, start: u16) -> Result<(OwnedFd, u16)> {
    // The kernel answers a config request at once; a wait for it is bounded
    // all the same (this runs on Node's thread).
    let timeout = nix::sys::time::TimeVal::new(2, 0);
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &timeout).map_err(|e| err("setsockopt SO_RCVTIMEO", e))?;
    let mut mode = COPY_RANGE.to_be_bytes().to_vec();
    mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
    let one = 1u32.to_be_bytes();
    let mut last = Errno::EBUSY;
    for i in 0..count {
        let group = first + (start.wrapping_add(i) % count);
        let bind = config_message(group, u32::from(i) * 2 + 1, true, &[(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])]);
        match request(fd.as_raw_fd(), &bind, u32::from(i) * 2 + 1) {
            Ok(()) => {}
            // Another socket's group (EPERM), or bound already (EBUSY): the next.
            Err(e @ (Errno::EPERM | Errno::EBUSY)) => {
                last = e;
                continue;
            }
            Err(e) => return Err(err(&format!("bind NFLOG group {group}"), e)),
        }
        // Each packet at once (a queue of one), its first COPY_RANGE bytes.
        let setup = config_message(
            group,
            u32::from(i) * 2 + 2,
            true,
            &[(NFULA_CFG_MODE, &mode), (NFULA_CFG_QTHRESH, &one)],
        );
        if let Err(e) = request(fd.as_raw_fd(), &setup, u32::from(i) * 2 + 2) {
            return Err(err(&format!("set the copy mode of NFLOG group {group}"), e));
        }
        return Ok((fd, group));
    }
    Err(err(
        &format!("bind an NFLOG group of {first}..{}", u32::from(first) + u32::from(count) - 1),
        last,
    ))
}

/// A refused packet as Node sees it.
#[napi(object)]
pub struct RefusedPacket {
    /// The IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...).
    pub protocol: u32,
    pub address: String,
    /// The TCP or UDP destination port, when copied.
    pub port: Option<u32>,
    /// The ICMP type, for ICMP.
    pub icmp_type: Option<u32>,
}

/// The NFLOG group of one container's refused packets, bound by this reader.
#[napi]
pub struct NflogReader {
    fd: Mutex<Option<Arc<AsyncFd<OwnedFd>>>>,
    group: u16,
    stop: Arc<tokio::sync::Notify>,
}

#[napi]
impl NflogReader {
    /// Binds a free group of `first .. first+count-1` (tried from a random
    /// one on, the next when another socket has it).
    #[napi(factory)]
    pub fn bind(first: u32, count: u32) -> Result<NflogReader> {
        NflogReader::on(socket_here()?, first, count)
    }

    /// As `bind`, in the network namespace `netns` (owned by the user
    /// namespace `userns`, which this process's user owns): an ordinary
    /// user's container, whose rules are in its own namespace.
    #[napi(factory)]
    pub fn bind_in(userns: String, netns: String, first: u32, count: u32) -> Result<NflogReader> {
        NflogReader::on(socket_in(&userns, &netns)?, first, count)
    }

    fn on(socket: OwnedFd, first: u32, count: u32) -> Result<NflogReader> {
        let first = u16::try_from(first).map_err(|_| Error::from_reason("the first NFLOG group must be below 65536"))?;
        let count = u16::try_from(count)
            .ok()
            .filter(|c| *c > 0 && u32::from(first) + u32::from(*c) <= 65536)
            .ok_or_else(|| Error::from_reason("the NFLOG group range must be non-empty and below 65536"))?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            ^ std::process::id();
        let (fd, group) = bind_free_group(socket, first, count, (seed % u32::from(count)) as u16)?;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).map_err(|e| err("fcntl O_NONBLOCK", e))?;
        // SAFETY: `fd` is a socket we own; it stays open as long as the AsyncFd.
        let async_fd = within_runtime_if_available(|| unsafe { AsyncFd::register(fd) })
            .map_err(|e| Error::from_reason(format!("register the NFLOG socket with the event loop: {e}")))?;
        Ok(NflogReader {
            fd: Mutex::new(Some(Arc::new(async_fd))),
            group,
            stop: Default::default(),
        })
    }

    #[napi(getter)]
    pub fn group(&self) -> u32 {
        u32::from(self.group)
    }

    /// Calls `callback()` each time packets may be waiting (then `drain()`
    /// reads them), until `close()`. Does not hold Node's event loop open.
    #[napi(ts_args_type = "callback: () => void")]
    pub fn watch(&self, callback: Function<'_, (), ()>) -> Result<()> {
        let tsfn = callback
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build()?;
        let Some(fd) = self.fd.lock().unwrap().clone() else {
            return Ok(());
        };
        let stop = self.stop.clone();
        napi::bindgen_prelude::spawn(async move {
            loop {
                let ready = {
                    let mut readable = std::pin::pin!(fd.readable());
                    let mut stopped = std::pin::pin!(stop.notified());
                    std::future::poll_fn(|cx| {
                        use std::future::Future;
                        use std::task::Poll;
                        if stopped.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(None);
                        }
                        readable.as_mut().poll(cx).map(|r| r.ok())
                    })
                    .await
                };
                let Some(mut guard) = ready else { return };
                // Cleared before Node is told: what comes after it is a new wake-up.
                guard.clear_ready();
                drop(guard);
                tsfn.call((), napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking);
            }
        });
        Ok(())
    }

    /// The refused packets waiting, at most `max` messages' worth; empty
    /// once closed.
    #[napi]
    pub fn drain(&self, max: u32) -> Vec<RefusedPacket> {
        let Some(fd) = self.fd.lock().unwrap().clone() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        for _ in 0..max {
            match recv(fd.get_ref().as_raw_fd(), &mut buf, libc::MSG_DONTWAIT) {
                Ok(n) => out.extend(parse_datagram(&buf[..n], self.group)),
                Err(Errno::EINTR) => continue,
                // More came than the socket's buffer holds: those are lost, read on.
                Err(Errno::ENOBUFS) => continue,
                Err(_) => break,
            }
        }
        out.into_iter()
            .map(|r| RefusedPacket {
                protocol: u32::from(r.protocol),
                address: std::net::Ipv4Addr::from(r.address).to_string(),
                port: r.port.map(u32::from),
                icmp_type: r.icmp_type.map(u32::from),
            })
            .collect()
    }

    /// Unbinds the group and closes the socket: by the time it returns (the
    /// watch, told to stop, lets go of it within moments; a bound of 200 ms
    /// all the same, after which the watch closes it as it ends). Anything
    /// not drained is dropped.
    #[napi]
    pub fn close(&self) {
        let taken = self.fd.lock().unwrap().take();
        if let Some(fd) = &taken {
            let _ = send(
                fd.get_ref().as_raw_fd(),
                &config_message(self.group, 0, false, &[(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_UNBIND])]),
            );
        }
        // A permit if the watch is not waiting yet.
        self.stop.notify_one();
        if let Some(fd) = taken {
            // The watch's copy goes when its task ends on the runtime's
            // thread; the socket closes with the last copy, here if it can.
            for _ in 0..200 {
                if Arc::strong_count(&fd) == 1 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(protocol: u8, dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 10, 89, 0, 2];
        p.extend_from_slice(&dst);
        p.extend_from_slice(l4);
        p
    }

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = ((NLA_HDRLEN + value.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize(align4(a.len()), 0);
        a
    }

    fn message(group: u16, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDRLEN];
        m.extend_from_slice(&[AF_INET, 0]);
        m.extend_from_slice(&group.to_be_bytes());
        for a in attrs {
            m.extend_from_slice(a);
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m[4..6].copy_from_slice(&(NFNL_SUBSYS_ULOG << 8).to_ne_bytes());
        m
    }

    #[test]
    fn tcp_udp_icmp_destinations() {
        let tcp = ipv4(6, [203, 0, 113, 7], &[0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 0]);
        let udp = ipv4(17, [198, 51, 100, 1], &[0, 53, 0x1f, 0x90, 0, 8, 0, 0]);
        let icmp = ipv4(1, [192, 0, 2, 9], &[8, 0, 0, 0]);
        let mut d = message(7, &[attr(1, &[8, 0, 3, 0]), attr(NFULA_PAYLOAD, &tcp)]);
        d.extend(message(7, &[attr(NFULA_PAYLOAD, &udp)]));
        d.extend(message(7, &[attr(NFULA_PAYLOAD | 0x4000, &icmp)]));
        assert_eq!(
            parse_datagram(&d, 7),
            vec![
                Refused {
                    protocol: 6,
                    address: [203, 0, 113, 7],
                    port: Some(443),
                    icmp_type: None
                },
                Refused {
                    protocol: 17,
                    address: [198, 51, 100, 1],
                    port: Some(8080),
                    icmp_type: None
                },
                Refused {
                    protocol: 1,
                    address: [192, 0, 2, 9],
                    port: None,
                    icmp_type: Some(8)
                },
            ]
        );
    }

    #[test]
    fn truncated_transport_header_gives_no_port() {
        let tcp = ipv4(6, [203, 0, 113, 7], &[0x9c]);
        assert_eq!(
            parse_ipv4(&tcp),
            Some(Refused {
                protocol: 6,
                address: [203, 0, 113, 7],
                port: None,
                icmp_type: None
            })
        );
        // IHL past the bytes copied.
        let mut long = ipv4(17, [1, 2, 3, 4], &[0, 1, 0, 2]);
        long[0] = 0x4f;
        assert_eq!(parse_ipv4(&long).unwrap().port, None);
        // A later fragment: no port, whatever its bytes.
        let mut frag = ipv4(17, [1, 2, 3, 4], &[0, 1, 0, 2]);
        frag[7] = 1;
        assert_eq!(parse_ipv4(&frag).unwrap().port, None);
    }

    #[test]
    fn malformed_packets_are_dropped() {
        assert_eq!(parse_ipv4(&[]), None);
        assert_eq!(parse_ipv4(&[0x45; 19]), None);
        assert_eq!(parse_ipv4(&ipv4(6, [1, 2, 3, 4], &[])[..19]), None);
        let mut v6 = ipv4(6, [1, 2, 3, 4], &[]);
        v6[0] = 0x60;
        assert_eq!(parse_ipv4(&v6), None);
        let mut short_ihl = ipv4(6, [1, 2, 3, 4], &[]);
        short_ihl[0] = 0x44;
        assert_eq!(parse_ipv4(&short_ihl), None);
    }

    #[test]
    fn lengths_out_of_bounds_are_dropped() {
        let tcp = ipv4(6, [203, 0, 113, 7], &[0, 1, 0, 80]);
        let good = message(3, &[attr(NFULA_PAYLOAD, &tcp)]);
        // Each truncation of a whole message: nothing, and no panic.
        for n in 0..good.len() {
            assert!(parse_datagram(&good[..n], 3).is_empty(), "{n} bytes");
        }
        // nlmsg_len beyond the datagram, or below its header.
        for bad in [good.len() as u32 + 4, 3, u32::MAX] {
            let mut m = good.clone();
            m[0..4].copy_from_slice(&bad.to_ne_bytes());
            assert!(parse_datagram(&m, 3).is_empty());
        }
        // An attribute longer than its message, or shorter than its header.
        for bad in [200u16, 2, 0] {
            let mut m = good.clone();
            m[NLMSG_HDRLEN + NFGENMSG_LEN..][..2].copy_from_slice(&bad.to_ne_bytes());
            assert!(parse_datagram(&m, 3).is_empty());
        }
        // Another group's, another family's, another message type.
        assert!(parse_datagram(&good, 4).is_empty());
        let mut v6 = good.clone();
        v6[NLMSG_HDRLEN] = 10;
        assert!(parse_datagram(&v6, 3).is_empty());
        let mut cfg = good.clone();
        cfg[4..6].copy_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
        assert!(parse_datagram(&cfg, 3).is_empty());
        // The good one still reads.
        assert_eq!(parse_datagram(&good, 3).len(), 1);
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic scramble of every byte of a valid datagram.
        let tcp = ipv4(6, [203, 0, 113, 7], &[0, 1, 0, 80]);
        let good = message(3, &[attr(1, &[0; 4]), attr(NFULA_PAYLOAD, &tcp)]);
        let mut x = 0x2545_f491_u32;
        for _ in 0..20_000 {
            let mut m = good.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let at = x as usize % m.len();
                m[at] = (x >> 8) as u8;
            }
            let _ = parse_datagram(&m, 3);
        }
    }

    #[test]
    fn acks_are_matched_by_seq() {
        let mut ack = vec![0u8; NLMSG_HDRLEN + 4];
        ack[0..4].copy_from_slice(&((NLMSG_HDRLEN + 4) as u32).to_ne_bytes());
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[8..12].copy_from_slice(&9u32.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-16i32).to_ne_bytes());
        assert_eq!(ack_of(&ack, 9), Some(16));
        assert_eq!(ack_of(&ack, 8), None);
        assert_eq!(ack_of(&ack[..18], 9), None);
    }
}
