//! What a container can send that its resolver or its host must withstand.
//!
//! `tsbox-probe syn IFNAME GATEWAY_MAC DST_IP PORT`: what a container with
//! CAP_NET_RAW can do that its kernel's routing never would: one TCP SYN,
//! from IFNAME's IPv4 address to DST_IP:PORT, written as a whole Ethernet
//! frame (AF_PACKET) to GATEWAY_MAC, e.g. a SYN to the host's 127.0.0.1
//! through the bridge (the CVE-2020-8558 class: a host whose bridge has
//! `route_localnet` on takes it). Then it reads the interface for up to two
//! seconds for the answer and prints `{"sent":true,"answer":"syn-ack"|"rst"|null}`.

use serde_json::json;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn fail(what: &str) -> i32 {
    let e = std::io::Error::last_os_error();
    crate::out_json(&json!({ "sent": false, "answer": null, "error": format!("{what}: {e}") }));
    1
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from(chunk[0]) << 8
        };
        acc += u32::from(word);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s.split(':').map(|p| u8::from_str_radix(p, 16)).collect::<Result<_, _>>().ok()?;
    parts.try_into().ok()
}

/// The interface's index, MAC and IPv4 address (ioctls on a datagram socket).
fn interface(name: &str) -> Option<(i32, [u8; 6], Ipv4Addr)> {
    if name.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: plain socket and ioctl calls on a zeroed ifreq holding a NUL-terminated name.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return None;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in name.bytes().enumerate() {
            req.ifr_name[i] = b as libc::c_char;
        }
        let ok = libc::ioctl(fd, libc::SIOCGIFINDEX, &mut req) == 0;
        let index = req.ifr_ifru.ifru_ifindex;
        let ok = ok && libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) == 0;
        let hw = req.ifr_ifru.ifru_hwaddr.sa_data;
        let mac = [hw[0] as u8, hw[1] as u8, hw[2] as u8, hw[3] as u8, hw[4] as u8, hw[5] as u8];
        let ok = ok && libc::ioctl(fd, libc::SIOCGIFADDR, &mut req) == 0;
        let sin = &*(std::ptr::addr_of!(req.ifr_ifru.ifru_addr) as *const libc::sockaddr_in);
        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        libc::close(fd);
        ok.then_some((index, mac, ip))
    }
}

/// An Ethernet frame holding one TCP SYN (IPv4 and TCP checksums computed).
fn frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(54);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = fold(sum16(&ip, 0));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    let c = fold(sum16(&tcp, sum16(&pseudo, 0)));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&tcp);
    f
}

pub fn cmd_syn(ifname: &str, gateway_mac: &str, dst: &str, port: &str) -> i32 {
    let (Some(dst_mac), Ok(dst), Ok(dport)) = (parse_mac(gateway_mac), dst.parse::<Ipv4Addr>(), port.parse::<u16>()) else {
        return crate::usage("syn IFNAME GATEWAY_MAC DST_IP PORT: bad argument");
    };
    let Some((index, src_mac, src)) = interface(ifname) else {
        return fail("interface");
    };
    let sport = 40000 + (std::process::id() % 20000) as u16;
    let proto = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: an AF_PACKET socket bound to one interface; the buffers outlive the calls.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
        if fd < 0 {
            return fail("socket(AF_PACKET)");
        }
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = index;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&dst_mac);
        let sa = std::ptr::addr_of!(addr) as *const libc::sockaddr;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        if libc::bind(fd, sa, len) != 0 {
            return fail("bind");
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let f = frame(src_mac, dst_mac, src, dst, sport, dport);
        if libc::sendto(fd, f.as_ptr().cast(), f.len(), 0, sa, len) < 0 {
            return fail("sendto");
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut buf = [0u8; 2048];
        let mut answer = None;
        while answer.is_none() && Instant::now() < deadline {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n < 54 {
                continue;
            }
            let p = &buf[14..n as usize];
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if p[9] != 6 || p.len() < ihl + 14 || p[12..16] != dst.octets() {
                continue;
            }
            let t = &p[ihl..];
            if u16::from_be_bytes([t[0], t[1]]) != dport || u16::from_be_bytes([t[2], t[3]]) != sport {
                continue;
            }
            answer = Some(if t[13] & 0x12 == 0x12 {
                "syn-ack"
            } else if t[13] & 0x04 != 0 {
                "rst"
            } else {
                "other"
            });
        }
        libc::close(fd);
        crate::out_json(&json!({ "sent": true, "answer": answer }));
    }
    0
}

/// `tsbox-probe udp IP PORT HEX`: one UDP datagram holding the bytes HEX
/// (e.g. a malformed DNS query to a resolver); prints `{"sent":N}`.
pub fn cmd_udp(ip: &str, port: &str, hex: &str) -> i32 {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect();
    let (Ok(ip), Ok(port), Some(bytes)) = (ip.parse::<Ipv4Addr>(), port.parse::<u16>(), bytes) else {
        return crate::usage("udp IP PORT HEX: bad argument");
    };
    match std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(&bytes, (ip, port))) {
        Ok(n) => {
            crate::out_json(&json!({ "sent": n }));
            0
        }
        Err(e) => {
            crate::out_json(&json!({ "sent": null, "error": e.to_string() }));
            1
        }
    }
}

/// `tsbox-probe ping IP`: one ICMP echo request to IP from an ICMP datagram
/// socket (no CAP_NET_RAW needed where net.ipv4.ping_group_range allows the
/// caller's group; busybox's ping needs a raw socket); prints `{"sent":N}`.
pub fn cmd_ping(ip: &str) -> i32 {
    let Ok(ip) = ip.parse::<Ipv4Addr>() else {
        return crate::usage("ping IP: bad address");
    };
    // SAFETY: plain socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMP) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        crate::out_json(&json!({ "sent": null, "error": format!("socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP): {e}") }));
        return 1;
    }
    // Type 8 (echo request), code 0; the kernel fills the checksum and id.
    let echo = [8u8, 0, 0, 0, 0, 0, 0, 1];
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `echo` and `addr` are live for the call; `fd` is ours.
    let n = unsafe {
        libc::sendto(
            fd,
            echo.as_ptr().cast(),
            echo.len(),
            0,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let e = std::io::Error::last_os_error();
    // SAFETY: ours, closed once.
    unsafe { libc::close(fd) };
    if n < 0 {
        crate::out_json(&json!({ "sent": null, "error": format!("sendto: {e}") }));
        return 1;
    }
    crate::out_json(&json!({ "sent": n }));
    0
}
