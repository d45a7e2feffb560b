//! `cargo xtask qemu ARCH`: boots the `image` initramfs under QEMU (TCG) and
//! checks what `/init` reports.
//!
//! Passes only if, before the timeout, every step of the plan prints its PASS line,
//! nothing prints FAIL, `/init` finishes, and each index depmod wrote inside the VM
//! (sent back over the serial console as base64) is byte-identical to what our
//! depmod writes on the host for the same tree (and to kmod 34.2's, when its
//! oracle has been fetched).
//!
//! `main.rs` runs the command: [`ensure_emulators`], `image`'s build of ARCH, then
//! [`boot`].

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::arch::Arch;
use crate::util::ensure_packages;
use crate::util::image::Image;
use crate::util::packages::{OPENSBI, QEMU};

/// Installs the system emulators (and OpenSBI) when missing.
pub fn ensure_emulators() -> Result<(), String> {
    ensure_packages(QEMU)
}

fn command(image: &Image) -> Command {
    let (program, machine, console): (&str, &[&str], &str) = match image.arch {
        Arch::X86_64 => (
            "qemu-system-x86_64",
            &["-accel", "tcg", "-cpu", "max"],
            "ttyS0",
        ),
        Arch::Aarch64 => (
            "qemu-system-aarch64",
            &["-M", "virt", "-cpu", "cortex-a57", "-accel", "tcg"],
            "ttyAMA0",
        ),
        // Debian's armmp kernel on the generic `virt` board (QEMU makes its DTB).
        // `max`: an ARMv8 core in AArch32 with the CRC32 instructions, so that
        // crc32-arm-ce (the first module for the alias crc32c) loads, as on the
        // aarch64 board; on a cortex-a15 it fails with ENODEV and busybox's
        // `modprobe crc32c` exits 1, even though crc32c-generic then loads.
        Arch::Armv7 => (
            "qemu-system-arm",
            &["-M", "virt", "-cpu", "max", "-accel", "tcg"],
            "ttyAMA0",
        ),
        // OpenSBI in M-mode, which starts the kernel in S-mode.
        Arch::Riscv64 | Arch::S390x => (
            "qemu-system-riscv64",
            &[
                "-M", "virt", "-cpu", "rv64", "-accel", "tcg", "-bios", OPENSBI,
            ],
            "ttyS0",
        ),
    };
    let mut cmd = Command::new(program);
    cmd.args(machine)
        .args([
            "-m",
            "512",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initrd)
        .arg("-append")
        .arg(format!("console={console} panic=-1 quiet"));
    cmd
}

fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return Err(format!("bad base64 byte {c:#x}")),
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

/// Boots `image` and checks its report against the host's outputs.
pub fn boot(image: &Image) -> Result<(), String> {
    let timeout = std::env::var("DEPMOD_QEMU_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180u64);
    let mut cmd = command(image);
    eprintln!("xtask: {cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = printable(&String::from_utf8_lossy(&line));
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = start + Duration::from_secs(timeout);
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    let mut passes = Vec::new();
    let mut fails = Vec::new();
    let mut done = false;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some((name, body)) = current.as_mut() {
                    if line == format!("END-BASE64 {name}") {
                        println!("  vm| [{name}: {} base64 bytes]", body.len());
                        let (name, body) = current.take().unwrap();
                        files.insert(name, body);
                    } else {
                        body.push_str(&line);
                    }
                    continue;
                }
                if let Some(name) = line.strip_prefix("BEGIN-BASE64 ") {
                    current = Some((name.to_string(), String::new()));
                    continue;
                }
                println!("  vm| {line}");
                if let Some(rest) = line.strip_prefix("PASS ") {
                    passes.push(rest.to_string());
                } else if line.starts_with("FAIL ") {
                    fails.push(line.clone());
                } else if line == "DEPMOD-TEST-DONE" {
                    done = true;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();

    let mut problems = Vec::new();
    if timed_out {
        problems.push(format!("timed out after {timeout} s"));
    }
    if !done {
        problems.push("/init did not finish".into());
    }
    problems.extend(fails);
    let mut expected = vec!["depmod".to_string()];
    expected.extend(image.steps.iter().cloned());
    for id in &expected {
        if !passes.iter().any(|p| p.starts_with(&format!("{id}:"))) {
            problems.push(format!("no PASS line for {id}"));
        }
    }

    // The indexes written in the VM against the host's.
    let mut names: Vec<String> = fs::read_dir(&image.host_outputs)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("modules.") && !is_input(n))
        .collect();
    names.sort();
    for extra in files.keys().filter(|n| !names.contains(n)) {
        problems.push(format!("the VM wrote {extra}, the host did not"));
    }
    let mut same = 0;
    for name in &names {
        let host = fs::read(image.host_outputs.join(name)).map_err(|e| e.to_string())?;
        let Some(b64) = files.get(name) else {
            problems.push(format!("{name}: not received from the VM"));
            continue;
        };
        let vm = decode_base64(b64)?;
        if vm != host {
            problems.push(format!(
                "{name}: VM wrote {} bytes, host {} bytes, different",
                vm.len(),
                host.len()
            ));
            continue;
        }
        if let Some(oracle) = &image.oracle_outputs {
            let k = fs::read(oracle.join(name)).map_err(|e| e.to_string())?;
            if k != host {
                problems.push(format!("{name}: differs from kmod 34.2's"));
                continue;
            }
        }
        same += 1;
    }
    println!(
        "qemu {} (Linux {}): exited {status} after {:.1} s; {} PASS lines of {}; {same}/{} indexes byte-identical to the host's{}",
        image.arch.name(),
        image.kver,
        elapsed.as_secs_f64(),
        passes.len(),
        expected.len(),
        names.len(),
        if image.oracle_outputs.is_some() {
            " and kmod 34.2's"
        } else {
            ""
        }
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "qemu {}: {}",
            image.arch.name(),
            problems.join("; ")
        ))
    }
}

/// A console line without terminal control sequences (SeaBIOS clears the screen).
fn printable(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // ESC [ parameters letter, or ESC and one character.
                if chars.next_if_eq(&'[').is_some() {
                    for p in chars.by_ref() {
                        if p.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn is_input(name: &str) -> bool {
    matches!(
        name,
        "modules.order" | "modules.builtin" | "modules.builtin.modinfo"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable() {
        let line = "\x1bc\x1b[?7l\x1b[2Jinit: up\r";
        assert_eq!(super::printable(line), "init: up");
    }

    #[test]
    fn base64() {
        assert_eq!(super::decode_base64("aGVsbG8K\n").unwrap(), b"hello\n");
        assert_eq!(super::decode_base64("YQ==").unwrap(), b"a");
    }
}
