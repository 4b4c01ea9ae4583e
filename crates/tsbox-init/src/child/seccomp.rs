//! Loading the seccomp filter: the last step before execve (DESIGN.md, sync
//! point 4). The program was compiled and checked in the parent (the addon,
//! tsbox_core::seccomp); here it is only handed to the kernel.

use tsbox_core::seccomp::{INSTRUCTION_SIZE, MAX_INSTRUCTIONS};
use tsbox_core::{Report, Step};

/// Installs `bpf` (raw `struct sock_filter` records, 8 little-endian bytes
/// each) as this thread's seccomp filter. The process is single-threaded, so no
/// SECCOMP_FILTER_FLAG_TSYNC is needed, and no_new_privs is left as the plan set
/// it: without it the kernel requires CAP_SYS_ADMIN (EACCES otherwise).
pub fn load(bpf: &[u8]) -> Result<(), Report> {
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
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(Report::new(Step::Seccomp, errno).detail(format!("load the seccomp filter ({n} instructions)")));
    }
    Ok(())
}
