//! The device rules replayed as the v1 controller does, and their programs
//! run by an interpreter: each verdict is written out by hand from the
//! kernel's rules (security/device_cgroup.c), then every policy's program is
//! checked against the emulation on a grid of devices and accesses.

use super::interp::run;
use super::program::*;
use super::*;

const R: u8 = ACC_READ;
const W: u8 = ACC_WRITE;
const M: u8 = ACC_MKNOD;
const C: Kind = Kind::Char;
const B: Kind = Kind::Block;

fn rules(list: &[(&str, &str)]) -> Vec<Rule> {
    list.iter().map(|(f, v)| Rule::parse(&format!("devices.{f}"), v).unwrap()).collect()
}

fn policy(list: &[(&str, &str)]) -> Policy {
    Policy::from_rules(&rules(list)).unwrap()
}

/// The program's verdict, through the interpreter.
fn verdict(p: &Policy, kind: Kind, major: u32, minor: u32, access: u8) -> bool {
    match run(&program(p), kind as u32, u32::from(access), major, minor).unwrap() {
        0 => false,
        1 => true,
        other => panic!("the program returned {other}"),
    }
}

/// Each expectation holds for the emulation and for the program.
fn expect(p: &Policy, cases: &[(Kind, u32, u32, u8, bool)]) {
    for &(kind, major, minor, access, allowed) in cases {
        assert_eq!(
            p.allows(kind, major, minor, access),
            allowed,
            "emulation: {kind:?} {major}:{minor} access {access:#b} in {p:?}"
        );
        assert_eq!(
            verdict(p, kind, major, minor, access),
            allowed,
            "program: {kind:?} {major}:{minor} access {access:#b} in {p:?}"
        );
    }
}

/// tsbox's writes for runtime-tools' rules (ts/oci/plan.ts, devicePolicy):
/// deny all, the config's, then the default devices.
const RUNTIME_TOOLS: &[(&str, &str)] = &[
    ("deny", "a"),
    ("deny", "a"),
    ("allow", "c 10:229 rwm"),
    ("allow", "b 8:20 rw"),
    ("allow", "b 10:200 r"),
    ("allow", "c *:* m"),
    ("allow", "b *:* m"),
    ("allow", "c 1:3 rwm"),
    ("allow", "c 1:5 rwm"),
    ("allow", "c 1:7 rwm"),
    ("allow", "c 1:8 rwm"),
    ("allow", "c 1:9 rwm"),
    ("allow", "c 5:0 rwm"),
    ("allow", "c 5:2 rwm"),
    ("allow", "c 136:* rwm"),
];

#[test]
fn parses_what_the_v1_files_take_and_nothing_else() {
    assert_eq!(
        Rule::parse("devices.allow", "c 1:3 rwm").unwrap(),
        Rule {
            allow: true,
            kind: Some(C),
            major: Some(1),
            minor: Some(3),
            access: R | W | M
        }
    );
    assert_eq!(
        Rule::parse("devices.deny", "b *:7 w").unwrap(),
        Rule {
            allow: false,
            kind: Some(B),
            major: None,
            minor: Some(7),
            access: W
        }
    );
    assert_eq!(Rule::parse("devices.deny", "a").unwrap().kind, None);
    assert_eq!(
        Rule::parse("devices.allow", "a *:* rwm").unwrap(),
        Rule {
            allow: true,
            kind: None,
            major: None,
            minor: None,
            access: ACC_ALL
        }
    );
    assert_eq!(Rule::parse("devices.allow", "c 4294967295:0 r").unwrap().major, Some(u32::MAX));
    for bad in [
        "",
        "x 1:3 r",
        "c 1:3",
        "c 1:3 rx",
        "c 1:3 rr",
        "c 1-3 r",
        "c -1:3 r",
        "c 4294967296:0 r",
        "c 1:3 r extra",
        "a 1:3 r",
        "a *:* r",
        "c :3 r",
    ] {
        assert!(Rule::parse("devices.allow", bad).is_err(), "{bad:?} parsed");
    }
    assert!(Rule::parse("devices.list", "a").is_err());
}

#[test]
fn deny_all_then_exceptions_each_covering_the_whole_request() {
    let p = policy(&[("deny", "a"), ("allow", "c 1:3 rw"), ("allow", "c 1:* m"), ("allow", "b 8:0 r")]);
    expect(
        &p,
        &[
            (C, 1, 3, R, true),
            (C, 1, 3, R | W, true),
            // rw from one exception and m from another: no single one covers rwm.
            (C, 1, 3, R | W | M, false),
            (C, 1, 3, M, true),
            (C, 1, 4, M, true),
            (C, 1, 4, R, false),
            (B, 1, 3, R, false),
            (B, 8, 0, R, true),
            (B, 8, 0, W, false),
            (B, 8, 1, R, false),
            (C, 8, 0, R, false),
            (C, 2, 3, R, false),
        ],
    );
}

#[test]
fn a_rule_with_the_default_takes_access_from_the_same_devices_only() {
    // Merged, then taken away again.
    let p = policy(&[("deny", "a"), ("allow", "c 1:3 r"), ("allow", "c 1:3 w"), ("deny", "c 1:3 w")]);
    assert_eq!(
        p.exceptions,
        vec![(
            Key {
                kind: C,
                major: Some(1),
                minor: Some(3)
            },
            R
        )]
    );
    expect(&p, &[(C, 1, 3, R, true), (C, 1, 3, W, false), (C, 1, 3, R | W, false)]);
    // All of it taken: no exception left.
    let p = policy(&[("deny", "a"), ("allow", "c 1:3 rw"), ("deny", "c 1:3 rwm")]);
    assert!(p.exceptions.is_empty());
    expect(&p, &[(C, 1, 3, R, false)]);
    // A narrower exception under a wider deny stays: the kernel removes exact matches only.
    let p = policy(&[("deny", "a"), ("allow", "c 1:3 rw"), ("deny", "c *:* rw")]);
    expect(&p, &[(C, 1, 3, R, true), (C, 1, 4, R, false)]);
}

#[test]
fn a_hole_in_a_wildcard_exception_is_an_error_not_a_rule_ignored() {
    for list in [
        &[("deny", "a"), ("allow", "c *:* rw"), ("deny", "c 1:3 w")][..],
        &[("deny", "a"), ("allow", "c 1:* rwm"), ("deny", "c 1:3 m")][..],
        &[("deny", "a"), ("allow", "c *:3 r"), ("deny", "c 1:3 rwm")][..],
        &[("allow", "a"), ("deny", "b *:* w"), ("allow", "b 8:0 w")][..],
    ] {
        let e = Policy::from_rules(&rules(list)).unwrap_err();
        assert!(e.contains("cannot take effect"), "{e}");
    }
    // Access the wildcard does not have is no hole; nor is a wildcard of another type.
    policy(&[("deny", "a"), ("allow", "c *:* m"), ("deny", "c 1:3 rw")]);
    policy(&[("deny", "a"), ("allow", "b *:* rwm"), ("deny", "c 1:3 rw")]);
    let e = Policy::from_rules(&rules(&[("deny", "a"), ("allow", "c *:* rw"), ("deny", "c 1:3 w")])).unwrap_err();
    assert_eq!(
        e,
        "the rule to deny c 1:3 w cannot take effect: an earlier rule allows c *:* rw for more devices, and a device cgroup takes a rule's access away only from the rule for exactly the same devices (give the devices to allow one by one instead of with *)"
    );
}

#[test]
fn allow_all_then_denials_that_share_any_of_the_request() {
    let p = policy(&[
        ("deny", "a"),
        ("allow", "c 1:3 r"),
        ("allow", "a"),
        ("deny", "c 1:3 w"),
        ("deny", "b 8:* m"),
    ]);
    assert!(p.default_allow);
    expect(
        &p,
        &[
            (C, 1, 3, R, true),
            (C, 1, 3, W, false),
            // Partly denied is denied.
            (C, 1, 3, R | W, false),
            (C, 1, 3, M, true),
            (C, 1, 4, W, true),
            (B, 8, 9, M, false),
            (B, 8, 9, R | W, true),
            (C, 8, 9, M, true),
        ],
    );
    // Allowing again takes the denial away.
    let p = policy(&[("allow", "a"), ("deny", "c 1:3 rw"), ("allow", "c 1:3 w")]);
    expect(&p, &[(C, 1, 3, W, true), (C, 1, 3, R, false), (C, 1, 3, R | W, false)]);
    // deny all resets everything before it.
    let p = policy(&[("allow", "a"), ("deny", "c 1:3 w"), ("deny", "a")]);
    assert_eq!(
        p,
        Policy {
            default_allow: false,
            exceptions: vec![]
        }
    );
    expect(&p, &[(C, 1, 3, R, false), (C, 5, 5, M, false)]);
    // A new cgroup allows everything.
    expect(&Policy::default(), &[(C, 1, 3, R | W | M, true), (B, 7, 7, W, true)]);
}

#[test]
fn runtime_tools_rules_with_the_default_devices() {
    let p = policy(RUNTIME_TOOLS);
    expect(
        &p,
        &[
            (C, 1, 3, R | W, true),    // null
            (C, 1, 5, R, true),        // zero
            (C, 1, 8, R, true),        // random
            (C, 5, 0, R | W, true),    // tty
            (C, 5, 2, R | W, true),    // ptmx
            (C, 136, 4, R | W, true),  // a pts
            (C, 10, 229, R | W, true), // fuse, allowed by the config
            (C, 1, 11, R | W, false),  // kmsg
            (C, 1, 11, W, false),
            (C, 1, 11, M, true), // mknod of any character device
            (B, 7, 0, M, true),  // or block device
            (B, 7, 0, R, false), // but not opening it
            (B, 8, 20, R | W, true),
            (B, 8, 20, M, true),
            (B, 10, 200, R, true),
            (B, 10, 200, W, false),
            (C, 10, 200, R, false),  // the rule was for a block device
            (C, 4, 1, R | W, false), // a virtual console
            (C, 1, 1, R, false),     // mem
        ],
    );
}

#[test]
fn the_instruction_stream_is_the_documented_one() {
    let p = policy(&[("deny", "a"), ("allow", "c 1:3 rw"), ("allow", "b *:* rwm")]);
    let i = |code, dst, src, off, imm| Insn { code, dst, src, off, imm };
    assert_eq!(
        program(&p),
        vec![
            i(LDX_MEM_W, 2, 1, 0, 0),
            i(ALU32_AND_K, 2, 0, 0, 0xffff),
            i(LDX_MEM_W, 3, 1, 0, 0),
            i(ALU32_RSH_K, 3, 0, 0, 16),
            i(LDX_MEM_W, 4, 1, 4, 0),
            i(LDX_MEM_W, 5, 1, 8, 0),
            // c 1:3 rw: the next block is 7 instructions on.
            i(JMP_JNE_K, 2, 0, 7, 2),
            i(ALU32_MOV_X, 1, 3, 0, 0),
            i(ALU32_AND_K, 1, 0, 0, i32::from(M)),
            i(JMP_JNE_K, 1, 0, 4, 0),
            i(JMP_JNE_K, 4, 0, 3, 1),
            i(JMP_JNE_K, 5, 0, 2, 3),
            i(ALU32_MOV_K, 0, 0, 0, 1),
            i(JMP_EXIT, 0, 0, 0, 0),
            // b *:* rwm: the type only.
            i(JMP_JNE_K, 2, 0, 2, 1),
            i(ALU32_MOV_K, 0, 0, 0, 1),
            i(JMP_EXIT, 0, 0, 0, 0),
            // The default.
            i(ALU32_MOV_K, 0, 0, 0, 0),
            i(JMP_EXIT, 0, 0, 0, 0),
        ]
    );
    // r2 = *(u32 *)(r1 + 4): dst in the low nibble, little-endian fields.
    assert_eq!(i(LDX_MEM_W, 2, 1, 4, 0).to_bytes(), [0x61, 0x12, 4, 0, 0, 0, 0, 0]);
    assert_eq!(i(JMP_JNE_K, 4, 0, -2, 0x0102_0304).to_bytes(), [0x55, 0x04, 0xfe, 0xff, 4, 3, 2, 1]);
}

#[test]
fn numbers_above_i32_max_compare_as_the_unsigned_numbers_they_are() {
    let p = policy(&[("deny", "a"), ("allow", "c 4294967295:2147483648 r"), ("allow", "c 2147483647:1 r")]);
    expect(
        &p,
        &[
            (C, u32::MAX, 1 << 31, R, true),
            (C, u32::MAX, 0, R, false),
            (C, 1 << 31, 1 << 31, R, false),
            (C, i32::MAX as u32, 1, R, true),
            (C, u32::MAX, u32::MAX, R, false),
        ],
    );
}

/// Policies built from rules drawn by a fixed generator, each program checked
/// against its emulation on every access to a grid of devices.
#[test]
fn every_program_decides_as_the_emulation_does() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let numbers = [0u32, 1, 3, 5, 136, u32::MAX];
    let mut checked = 0;
    for _ in 0..300 {
        let mut list = Vec::new();
        for _ in 0..next(8) + 1 {
            let allow = next(2) == 0;
            let rule = if next(6) == 0 {
                Rule {
                    allow,
                    kind: None,
                    major: None,
                    minor: None,
                    access: ACC_ALL,
                }
            } else {
                let number = |x: u64| if x == 0 { None } else { Some(numbers[(x - 1) as usize]) };
                Rule {
                    allow,
                    kind: Some(if next(2) == 0 { C } else { B }),
                    major: number(next(numbers.len() as u64 + 1)),
                    minor: number(next(numbers.len() as u64 + 1)),
                    access: next(7) as u8 + 1,
                }
            };
            list.push(rule);
        }
        let Ok(p) = Policy::from_rules(&list) else { continue };
        let prog = program(&p);
        for kind in [B, C] {
            for &major in &numbers[..] {
                for &minor in &[0u32, 3, u32::MAX] {
                    for access in 1..=ACC_ALL {
                        let got = run(&prog, kind as u32, u32::from(access), major, minor).unwrap();
                        assert_eq!(
                            got == 1,
                            p.allows(kind, major, minor, access),
                            "{kind:?} {major}:{minor} {access:#b} under {list:?}"
                        );
                        assert!(got <= 1);
                        checked += 1;
                    }
                }
            }
        }
    }
    // Most draws make a policy (the rest open a hole and are refused).
    assert!(checked > 200 * 2 * 6 * 3 * 7, "only {checked} verdicts checked");
}

#[test]
fn the_interpreter_refuses_what_the_verifier_would() {
    let ok = program(&policy(&[("deny", "a"), ("allow", "c 1:3 r")]));
    assert_eq!(run(&ok, 2, u32::from(R), 1, 3), Ok(1));
    let mut backward = ok.clone();
    backward[6].off = -3;
    assert!(run(&backward, 2, u32::from(R), 9, 9).unwrap_err().contains("backward"));
    let mut unset = ok.clone();
    unset.insert(
        0,
        Insn {
            code: ALU32_MOV_X,
            dst: 0,
            src: 7,
            off: 0,
            imm: 0,
        },
    );
    assert!(run(&unset, 2, u32::from(R), 1, 3).is_err());
    let mut no_exit = ok.clone();
    no_exit.pop();
    assert!(run(&no_exit, 2, u32::from(R), 1, 3).is_err());
    let mut past = ok;
    past[6].off = 100;
    // The type test jumps for a block device.
    assert!(run(&past, 1, u32::from(R), 9, 9).unwrap_err().contains("out of the program"));
}
