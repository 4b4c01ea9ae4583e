//! Loading the seccomp filter: the last step before execve (DESIGN.md, sync
//! point 4). The program was compiled and checked in the parent (the addon,
//! tsbox_core::seccomp); here it is only handed to the kernel.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use tsbox_core::seccomp::{INSTRUCTION_SIZE, MAX_INSTRUCTIONS};
use tsbox_core::{Report, SeccompAgent, Step};

/// The connection to the seccomp agent (OCI `listenerPath`), made while the
/// host's paths resolve and the caller's credentials hold; closed once the
/// listener went through it.
static AGENT: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// <linux/seccomp.h>: seccomp(2) returns a notification descriptor.
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_uint = 1 << 3;

/// Connects to the seccomp agent's socket at `path`, for [`load`] later.
pub fn connect_agent(path: &str) -> Result<(), Report> {
    let failed = |e: nix::errno::Errno, what: &str| {
        Report::new(Step::Seccomp, e as i32)
            .path(path)
            .detail(format!("{what} the seccomp agent's socket (linux.seccomp.listenerPath)"))
    };
    let sock = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(|e| failed(e, "open a socket for"))?;
    let addr = UnixAddr::new(path).map_err(|e| failed(e, "name"))?;
    connect(sock.as_raw_fd(), &addr)
        .map_err(|e| failed(e, "connect to").hint("the seccomp agent must listen there before the container is created"))?;
    *AGENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(sock);
    Ok(())
}

/// The agent's socket while it waits for [`load`]: a descriptor that must
/// stay open until then.
pub fn agent_fd() -> Option<std::os::fd::RawFd> {
    AGENT.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| s.as_raw_fd())
}

/// Installs `bpf` (raw `struct sock_filter` records, 8 little-endian bytes
/// each) as this thread's seccomp filter. The process is single-threaded, so no
/// SECCOMP_FILTER_FLAG_TSYNC is needed, and no_new_privs is left as the plan set
/// it: without it the kernel requires CAP_SYS_ADMIN (EACCES otherwise).
pub fn load(bpf: &[u8], agent: Option<&SeccompAgent>) -> Result<(), Report> {
    let n = bpf.len() / INSTRUCTION_SIZE;
    if !bpf.len().is_multiple_of(INSTRUCTION_SIZE) || n == 0 || n > MAX_INSTRUCTIONS {
        return Err(Report::new(Step::Seccomp, libc::EINVAL)
            .detail(format!(
                "a seccomp program of {} bytes is not 1 to {MAX_INSTRUCTIONS} instructions of {INSTRUCTION_SIZE} bytes",
                bpf.len()
            ))
            .hint("the plan's seccomp program is damaged; this is a tsbox bug"));
    }
    let mut prog: Vec<libc::sock_filter> = bpf
        .chunks_exact(INSTRUCTION_SIZE)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: n as libc::c_ushort,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: the kernel copies `fprog.len` instructions from `fprog.filter`,
    // which points into `prog`, alive until this returns.
    // The agent's message is made before the filter is in place: from then on
    // only sendmsg may run before the agent has the listener (a notified
    // mmap of an allocation would wait for it forever).
    let handover = agent.map(handover).transpose()?;
    let flags = if agent.is_some() { SECCOMP_FILTER_FLAG_NEW_LISTENER } else { 0 };
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r < 0 || (agent.is_none() && r != 0) {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(Report::new(Step::Seccomp, errno).detail(format!("load the seccomp filter ({n} instructions)")));
    }
    if let Some((conn, bytes)) = handover {
        // SAFETY: with NEW_LISTENER, seccomp(2) returned a new descriptor, ours.
        let listener = unsafe { OwnedFd::from_raw_fd(r as i32) };
        send_listener(&conn, &bytes, &listener)?;
    }
    Ok(())
}

/// The connection to the agent (taken: it closes once used) and the
/// runtime-spec's containerProcessState for it: the host pid,
/// `listenerMetadata`, the container's state.
fn handover(agent: &SeccompAgent) -> Result<(OwnedFd, Vec<u8>), Report> {
    let failed = |errno: i32, what: String| Report::new(Step::Seccomp, errno).detail(what);
    let conn = AGENT.lock().unwrap_or_else(|e| e.into_inner()).take().ok_or_else(|| {
        failed(
            libc::ENOTCONN,
            "send the seccomp listener: the container has no connection to a seccomp agent".into(),
        )
    })?;
    let pid = super::hooks::host_pid();
    let mut state: serde_json::Value =
        serde_json::from_str(&agent.state).map_err(|e| failed(libc::EINVAL, format!("the container's state is not JSON: {e}")))?;
    // The status is the caller's to say: created for the first process, running for an exec'd one.
    if let Some(o) = state.as_object_mut() {
        o.insert("pid".into(), pid.into());
    }
    let message = serde_json::json!({
        "ociVersion": state.get("ociVersion").cloned().unwrap_or_default(),
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": agent.metadata,
        "state": state,
    });
    Ok((conn, serde_json::to_vec(&message).unwrap_or_default()))
}

/// Sends `bytes` and the listener in one message, with nothing allocated:
/// the control buffer is on the stack.
fn send_listener(conn: &OwnedFd, bytes: &[u8], listener: &OwnedFd) -> Result<(), Report> {
    #[repr(C, align(8))]
    struct Control([u8; 64]);
    let mut control = Control([0; 64]);
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain old data; zeroed is valid, then filled in.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_* are size computations and pointer walks within `control`,
    // which is large enough for one descriptor.
    unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), listener.as_raw_fd());
    }
    // SAFETY: sendmsg reads the buffers msg describes, all alive here.
    if unsafe { libc::sendmsg(conn.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) } < 0 {
        return Err(Report::new(Step::Seccomp, nix::errno::Errno::last() as i32)
            .detail("send the seccomp listener to the agent (linux.seccomp.listenerPath)"));
    }
    Ok(())
}
