//! The tables both languages use: errno names, the exit statuses of a
//! command that could not start (Docker's), and the setup steps. The
//! TypeScript side's copy, `ts/generated/tables.ts`, is generated from here
//! (`npm run generate`), and a test fails when it is stale.

use std::borrow::Cow;

use crate::report::Step;

/// Linux's errno values and their names, as the man pages spell them (the
/// first name where two share a number: EAGAIN, EDEADLK, EOPNOTSUPP).
pub const ERRNO_NAMES: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (7, "E2BIG"),
    (8, "ENOEXEC"),
    (9, "EBADF"),
    (10, "ECHILD"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (15, "ENOTBLK"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (18, "EXDEV"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (23, "ENFILE"),
    (24, "EMFILE"),
    (25, "ENOTTY"),
    (26, "ETXTBSY"),
    (27, "EFBIG"),
    (28, "ENOSPC"),
    (29, "ESPIPE"),
    (30, "EROFS"),
    (31, "EMLINK"),
    (32, "EPIPE"),
    (33, "EDOM"),
    (34, "ERANGE"),
    (35, "EDEADLK"),
    (36, "ENAMETOOLONG"),
    (37, "ENOLCK"),
    (38, "ENOSYS"),
    (39, "ENOTEMPTY"),
    (40, "ELOOP"),
    (42, "ENOMSG"),
    (43, "EIDRM"),
    (44, "ECHRNG"),
    (45, "EL2NSYNC"),
    (46, "EL3HLT"),
    (47, "EL3RST"),
    (48, "ELNRNG"),
    (49, "EUNATCH"),
    (50, "ENOCSI"),
    (51, "EL2HLT"),
    (52, "EBADE"),
    (53, "EBADR"),
    (54, "EXFULL"),
    (55, "ENOANO"),
    (56, "EBADRQC"),
    (57, "EBADSLT"),
    (59, "EBFONT"),
    (60, "ENOSTR"),
    (61, "ENODATA"),
    (62, "ETIME"),
    (63, "ENOSR"),
    (64, "ENONET"),
    (65, "ENOPKG"),
    (66, "EREMOTE"),
    (67, "ENOLINK"),
    (68, "EADV"),
    (69, "ESRMNT"),
    (70, "ECOMM"),
    (71, "EPROTO"),
    (72, "EMULTIHOP"),
    (73, "EDOTDOT"),
    (74, "EBADMSG"),
    (75, "EOVERFLOW"),
    (76, "ENOTUNIQ"),
    (77, "EBADFD"),
    (78, "EREMCHG"),
    (79, "ELIBACC"),
    (80, "ELIBBAD"),
    (81, "ELIBSCN"),
    (82, "ELIBMAX"),
    (83, "ELIBEXEC"),
    (84, "EILSEQ"),
    (85, "ERESTART"),
    (86, "ESTRPIPE"),
    (87, "EUSERS"),
    (88, "ENOTSOCK"),
    (89, "EDESTADDRREQ"),
    (90, "EMSGSIZE"),
    (91, "EPROTOTYPE"),
    (92, "ENOPROTOOPT"),
    (93, "EPROTONOSUPPORT"),
    (94, "ESOCKTNOSUPPORT"),
    (95, "EOPNOTSUPP"),
    (96, "EPFNOSUPPORT"),
    (97, "EAFNOSUPPORT"),
    (98, "EADDRINUSE"),
    (99, "EADDRNOTAVAIL"),
    (100, "ENETDOWN"),
    (101, "ENETUNREACH"),
    (102, "ENETRESET"),
    (103, "ECONNABORTED"),
    (104, "ECONNRESET"),
    (105, "ENOBUFS"),
    (106, "EISCONN"),
    (107, "ENOTCONN"),
    (108, "ESHUTDOWN"),
    (109, "ETOOMANYREFS"),
    (110, "ETIMEDOUT"),
    (111, "ECONNREFUSED"),
    (112, "EHOSTDOWN"),
    (113, "EHOSTUNREACH"),
    (114, "EALREADY"),
    (115, "EINPROGRESS"),
    (116, "ESTALE"),
    (117, "EUCLEAN"),
    (118, "ENOTNAM"),
    (119, "ENAVAIL"),
    (120, "EISNAM"),
    (121, "EREMOTEIO"),
    (122, "EDQUOT"),
    (123, "ENOMEDIUM"),
    (124, "EMEDIUMTYPE"),
    (125, "ECANCELED"),
    (126, "ENOKEY"),
    (127, "EKEYEXPIRED"),
    (128, "EKEYREVOKED"),
    (129, "EKEYREJECTED"),
    (130, "EOWNERDEAD"),
    (131, "ENOTRECOVERABLE"),
    (132, "ERFKILL"),
    (133, "EHWPOISON"),
];

/// The symbolic name of an errno value; `errno N` for one Linux does not
/// define, and `error` for 0 (a failure that is not a system call's).
pub fn errno_name(errno: i32) -> Cow<'static, str> {
    if errno == 0 {
        return Cow::Borrowed("error");
    }
    match ERRNO_NAMES.binary_search_by_key(&errno, |(n, _)| *n) {
        Ok(i) => Cow::Borrowed(ERRNO_NAMES[i].1),
        Err(_) => Cow::Owned(format!("errno {errno}")),
    }
}

/// tsbox itself failed (Docker's 125).
pub const EXIT_RUNTIME: i32 = 125;
/// The command exists but could not be executed (126).
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// The command was not found (127).
pub const EXIT_NOT_FOUND: i32 = 127;

/// The exit status for a failure at `step` with `errno`: Docker's
/// conventions, 127 for a command not found, 126 for one that is not
/// executable, 125 for everything else.
pub fn exit_code_for(step: &str, errno: i32) -> i32 {
    match (step, errno) {
        ("exec", libc::ENOENT) => EXIT_NOT_FOUND,
        ("exec", libc::EACCES | libc::ENOEXEC | libc::EISDIR) => EXIT_NOT_EXECUTABLE,
        _ => EXIT_RUNTIME,
    }
}

/// `ts/generated/tables.ts`.
pub fn typescript() -> String {
    let mut out = String::from("// Generated from crates/tsbox-core/src/tables.rs by `npm run generate`; do not edit.\n\n");
    out.push_str("/** Linux's errno values and their names. */\nexport const ERRNO_NAMES: Readonly<Record<number, string>> = {\n");
    for (n, name) in ERRNO_NAMES {
        out.push_str(&format!("  {n}: '{name}',\n"));
    }
    out.push_str("};\n\n");
    out.push_str(&format!(
        "export const EXIT_RUNTIME = {EXIT_RUNTIME};\nexport const EXIT_NOT_EXECUTABLE = {EXIT_NOT_EXECUTABLE};\nexport const EXIT_NOT_FOUND = {EXIT_NOT_FOUND};\n\n"
    ));
    out.push_str("/** The exit status of an `exec` step that failed with this errno (else EXIT_RUNTIME). */\nexport const EXEC_EXIT_CODES: Readonly<Record<number, number>> = {\n");
    for errno in [libc::ENOENT, libc::EACCES, libc::ENOEXEC, libc::EISDIR] {
        out.push_str(&format!("  {errno}: {},\n", exit_code_for("exec", errno)));
    }
    out.push_str("};\n\n");
    out.push_str("/** The setup steps of tsbox-init, in the order they run. */\nexport const HELPER_STEPS = [\n");
    for step in Step::ALL {
        out.push_str(&format!("  '{}',\n", step.as_str()));
    }
    out.push_str("] as const;\n\nexport type HelperStep = (typeof HELPER_STEPS)[number];\n\n");
    out.push_str(
        "/** The phases of a container's life, in order (tsbox_core::Phase): one message type each. */\nexport const PHASES = [\n",
    );
    for phase in crate::Phase::ALL {
        out.push_str(&format!("  '{}',\n", phase.as_str()));
    }
    out.push_str("] as const;\n\nexport type Phase = (typeof PHASES)[number];\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_errno_has_its_name_and_the_rest_a_number() {
        assert_eq!(errno_name(1), "EPERM");
        assert_eq!(errno_name(97), "EAFNOSUPPORT");
        assert_eq!(errno_name(133), "EHWPOISON");
        assert_eq!(errno_name(0), "error");
        assert_eq!(errno_name(4000), "errno 4000");
        assert!(ERRNO_NAMES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn exit_codes_follow_docker() {
        assert_eq!(exit_code_for("exec", libc::ENOENT), 127);
        assert_eq!(exit_code_for("exec", libc::EACCES), 126);
        assert_eq!(exit_code_for("exec", libc::E2BIG), 125);
        assert_eq!(exit_code_for("pivot_root", libc::ENOENT), 125);
    }
}
