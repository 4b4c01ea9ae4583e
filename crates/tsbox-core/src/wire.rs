//! Framing on the SOCK_SEQPACKET channels, the one implementation both ends
//! use (the addon and tsbox-init): one message per packet, descriptors
//! attached with SCM_RIGHTS, the size peeked before the packet is read so a
//! message is never cut short.
//!
//! A unix socket refuses a packet larger than its send buffer (about 208 KiB
//! by default; only root may raise it past `net.core.wmem_max`), and a plan
//! legitimately carries up to the kernel's ARG_MAX of arguments and
//! environment. A message above [`INLINE_MAX`] therefore travels in a sealed
//! memfd: the packet is then [`MEMFD_MARKER`] alone, with the memfd as its
//! first descriptor. JSON never starts with a NUL byte, so the two cannot be
//! confused.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recv, recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Messages up to this size go inline, in the packet itself.
pub const INLINE_MAX: usize = 64 << 10;
/// The largest message either end sends or accepts: a plan with ARG_MAX of
/// argv and env fits many times over; a hostile or broken peer cannot make
/// the other allocate without bound.
pub const MAX_MESSAGE: usize = 16 << 20;
/// The most descriptors one message carries.
pub const MAX_FDS: usize = 16;
/// The packet that says "the message is in the attached memfd".
pub const MEMFD_MARKER: &[u8] = b"\0memfd";

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] Errno),
    #[error("a {0}-byte message is over the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("a message was cut short (MSG_TRUNC or MSG_CTRUNC): a peer broke the framing")]
    Truncated,
    #[error("a memfd message came without its memfd")]
    NoMemfd,
}

impl WireError {
    pub fn errno(&self) -> i32 {
        match self {
            WireError::Io(e) => *e as i32,
            WireError::TooLarge(_) => libc::EMSGSIZE,
            WireError::Truncated | WireError::NoMemfd => libc::EPROTO,
        }
    }
}

/// Sends `bytes` as one message with `fds` attached.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) -> Result<(), WireError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge(bytes.len()));
    }
    if bytes.len() <= INLINE_MAX {
        return send_packet(sock, bytes, fds);
    }
    let memfd = sealed_memfd(bytes)?;
    let mut all = Vec::with_capacity(fds.len() + 1);
    all.push(memfd.as_raw_fd());
    all.extend_from_slice(fds);
    send_packet(sock, MEMFD_MARKER, &all)
}

fn send_packet(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) -> Result<(), WireError> {
    let iov = [IoSlice::new(bytes)];
    let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
        vec![]
    } else {
        vec![ControlMessage::ScmRights(fds)]
    };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// A memfd holding `bytes`, sealed so the receiver reads what was sent.
fn sealed_memfd(bytes: &[u8]) -> Result<OwnedFd, Errno> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create("tsbox-message", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    let mut done = 0;
    while done < bytes.len() {
        match nix::unistd::write(&fd, &bytes[done..]) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) => done += n,
        }
    }
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on a descriptor we own.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(Errno::last());
    }
    Ok(fd)
}

/// A message's bytes and the descriptors that came with it.
pub type Message = (Vec<u8>, Vec<OwnedFd>);

/// The next message and the descriptors that came with it (close-on-exec),
/// or `None` when the peer has closed its end. With `nonblocking`, EAGAIN
/// when nothing is queued.
pub fn recv_message(sock: BorrowedFd<'_>, nonblocking: bool) -> Result<Option<Message>, WireError> {
    let fd = sock.as_raw_fd();
    let extra = if nonblocking { MsgFlags::MSG_DONTWAIT } else { MsgFlags::empty() };
    // Peek with MSG_TRUNC for the packet's real size, then read it whole.
    let mut probe = [0u8; 1];
    let size = loop {
        match recv(fd, &mut probe, MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC | extra) {
            // ECONNRESET: the peer exited with a message of ours unread. The
            // kernel says so once, ahead of what it sent before, which is
            // still there to read.
            Err(Errno::EINTR | Errno::ECONNRESET) => continue,
            Err(e) => return Err(e.into()),
            Ok(0) => return Ok(None),
            Ok(n) => break n,
        }
    };
    if size > INLINE_MAX.max(MEMFD_MARKER.len()) {
        return Err(WireError::TooLarge(size));
    }
    let mut buf = vec![0u8; size];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (n, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC | extra) {
            Err(Errno::EINTR | Errno::ECONNRESET) => continue,
            Err(e) => return Err(e.into()),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(list) = c {
                        // SAFETY: the kernel just installed these descriptors for us.
                        fds.extend(list.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
                if msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) {
                    return Err(WireError::Truncated);
                }
                break (msg.bytes, fds);
            }
        }
    };
    buf.truncate(n);
    if buf != MEMFD_MARKER {
        return Ok(Some((buf, fds)));
    }
    let mut fds = fds.into_iter();
    let memfd = fds.next().ok_or(WireError::NoMemfd)?;
    Ok(Some((read_memfd(&memfd)?, fds.collect())))
}

fn read_memfd(fd: &OwnedFd) -> Result<Vec<u8>, WireError> {
    let len = nix::sys::stat::fstat(fd)?.st_size as usize;
    if len > MAX_MESSAGE {
        return Err(WireError::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match nix::sys::uio::pread(fd, &mut buf[done..], done as libc::off_t) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(0) => break,
            Ok(n) => done += n,
        }
    }
    buf.truncate(done);
    Ok(buf)
}

/// Calls `f` with a socket address for `path`, however long the path: one
/// beyond sun_path's 108 bytes (a state directory deep under `--root`) is
/// reached through its directory, opened, as `/proc/self/fd/N/NAME`.
pub fn with_unix_addr<T>(path: &str, f: impl FnOnce(&nix::sys::socket::UnixAddr) -> nix::Result<T>) -> nix::Result<T> {
    use nix::sys::socket::UnixAddr;
    if let Ok(addr) = UnixAddr::new(path) {
        return f(&addr);
    }
    let p = std::path::Path::new(path);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name()) else {
        return Err(Errno::ENAMETOOLONG);
    };
    let dir = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let short = format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), name.to_string_lossy());
    let addr = UnixAddr::new(short.as_str())?;
    f(&addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap()
    }

    #[test]
    fn a_socket_path_beyond_sun_path_is_bound_and_reached_through_its_directory() {
        use nix::sys::socket::{bind, connect, listen, socket, Backlog};
        let base = std::env::temp_dir().join(format!("tsbox-wire-{}", std::process::id()));
        let deep = base.join("d".repeat(100)).join("e".repeat(40));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("control.sock");
        let path = path.to_str().unwrap();
        assert!(path.len() > 108);
        let listener = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).unwrap();
        with_unix_addr(path, |a| bind(listener.as_raw_fd(), a)).unwrap();
        listen(&listener, Backlog::new(1).unwrap()).unwrap();
        assert!(std::path::Path::new(path).exists());
        let client = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).unwrap();
        with_unix_addr(path, |a| connect(client.as_raw_fd(), a)).unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn small_and_large_messages_arrive_whole_with_their_descriptors() {
        let (a, b) = pair();
        let (extra, _keep) = pair();
        for size in [1, 4096, 4097, INLINE_MAX, INLINE_MAX + 1, 3 << 20] {
            let msg: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            send(a.as_fd(), &msg, &[extra.as_raw_fd()]).unwrap();
            let (got, fds) = recv_message(b.as_fd(), false).unwrap().unwrap();
            assert_eq!(got.len(), size);
            assert_eq!(got, msg);
            assert_eq!(fds.len(), 1, "{size}");
        }
    }

    #[test]
    fn a_peer_that_closed_reads_as_none() {
        let (a, b) = pair();
        drop(a);
        assert!(recv_message(b.as_fd(), false).unwrap().is_none());
    }

    #[test]
    fn nothing_queued_is_eagain_when_nonblocking() {
        let (_a, b) = pair();
        assert!(matches!(recv_message(b.as_fd(), true), Err(WireError::Io(Errno::EAGAIN))));
    }

    #[test]
    fn messages_over_the_limit_are_refused_on_both_ends() {
        let (a, _b) = pair();
        let big = vec![b'x'; MAX_MESSAGE + 1];
        assert!(matches!(send(a.as_fd(), &big, &[]), Err(WireError::TooLarge(_))));
    }

    #[test]
    fn a_memfd_marker_without_a_memfd_is_a_protocol_error() {
        let (a, b) = pair();
        send_packet(a.as_fd(), MEMFD_MARKER, &[]).unwrap();
        assert!(matches!(recv_message(b.as_fd(), false), Err(WireError::NoMemfd)));
    }
}
