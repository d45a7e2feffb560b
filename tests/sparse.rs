//! Plain modules read in part (`depmod::sparse`) must give what the whole file gives.
//!
//! The host reads only the ranges a `Plan` asks for into an image that is zero
//! elsewhere. Here the same plan runs in memory, with the gaps filled three ways (zero
//! as the host does, 0xff, and a pattern of `__crc_` names, NULs and modinfo
//! records): if the scan ever read a byte the plan did not ask for, the three would
//! differ from each other or from the whole file. Checked on every module of the real
//! Debian tree (each must be read in part, not whole) and on thousands of damaged
//! variants of real and synthetic modules (ELF32/ELF64, both byte orders).

mod common;

use common::debian;
use common::elfgen::{self, Class, Endian, Sym};
use common::rng::Rng;
use depmod::scan::ModuleData;
use depmod::sparse::{Plan, Step, HEAD};

/// Gap fillers: the host's zero, and two that would change a verdict if read.
const FILLS: [&[u8]; 3] = [
    b"\0",
    b"\xff",
    b"__crc_x\0alias=gap\0\x01\x02__versions\0.symtab\0",
];

/// The image the host would scan, with `fill` in the gaps, and the bytes read; `None`
/// when the plan reads the whole file.
fn image(file: &[u8], fill: &[u8]) -> Option<(Vec<u8>, u64)> {
    if file.len() <= HEAD || !file.starts_with(b"\x7fELF") {
        return None;
    }
    let mut image: Vec<u8> = fill.iter().copied().cycle().take(file.len()).collect();
    image[..HEAD].copy_from_slice(&file[..HEAD]);
    let mut plan = Plan::new(file.len() as u64);
    let mut read = HEAD as u64;
    loop {
        match plan.next(&image) {
            Step::Read(ranges) => {
                for r in ranges {
                    let (a, b) = (r.start as usize, r.end as usize);
                    image[a..b].copy_from_slice(&file[a..b]);
                    read += r.end - r.start;
                }
            }
            Step::Scan => return Some((image, read)),
            Step::Full => return None,
        }
    }
}

/// Checks `file` read in part against the whole file; true when read in part.
fn check(file: &[u8], what: &str) -> bool {
    let images: Vec<_> = FILLS.iter().map(|fill| image(file, fill)).collect();
    if images.iter().all(Option::is_none) {
        return false;
    }
    let whole = format!("{:?}", ModuleData::from_image(file));
    for (img, fill) in images.iter().zip(FILLS) {
        let Some((img, _)) = img else {
            panic!("{what}: the plan depends on the bytes it did not read");
        };
        let part = format!("{:?}", ModuleData::from_image(img));
        assert_eq!(whole, part, "{what}: read in part (gaps {fill:?}) differs");
    }
    true
}

#[test]
fn every_debian_module_reads_in_part_as_whole() {
    let dir = debian::module_dir().expect("the Debian tree");
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "ko") {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 4000, "{} modules", files.len());
    let (mut total, mut read) = (0u64, 0u64);
    for p in &files {
        let bytes = std::fs::read(p).unwrap();
        assert!(
            check(&bytes, &p.display().to_string()),
            "{}: read whole",
            p.display()
        );
        total += bytes.len() as u64;
        read += image(&bytes, b"\0").unwrap().1;
    }
    // About 16% of the tree is what the scan reads; the rest is headers, the bytes
    // before the section table and short gaps read to save a `pread`.
    let share = read as f64 / total as f64;
    assert!(share < 0.22, "read {:.1}% of the tree", share * 100.0);
}

/// Just enough of an ELF file to aim the damage.
struct Layout {
    is64: bool,
    big: bool,
    shoff: usize,
    shnum: usize,
    /// (header offset, file offset, size, name offset) per section.
    sections: Vec<(usize, u64, u64, u64)>,
    names: (u64, u64),
    symtab: Option<(u64, u64)>,
    strtab: Option<(u64, u64)>,
}

fn rd(b: &[u8], o: usize, n: usize, big: bool) -> u64 {
    let mut v = 0u64;
    for i in 0..n {
        let byte = u64::from(b[o + if big { i } else { n - 1 - i }]);
        v = v << 8 | byte;
    }
    v
}

fn wr(b: &mut [u8], o: usize, n: usize, v: u64, big: bool) {
    if o + n > b.len() {
        return;
    }
    for i in 0..n {
        let byte = (v >> (8 * i)) as u8;
        b[o + if big { n - 1 - i } else { i }] = byte;
    }
}

fn layout(b: &[u8]) -> Layout {
    let is64 = b[4] == 2;
    let big = b[5] == 2;
    let (shoff, shnum, shstrndx) = if is64 {
        (rd(b, 40, 8, big), rd(b, 60, 2, big), rd(b, 62, 2, big))
    } else {
        (rd(b, 32, 4, big), rd(b, 48, 2, big), rd(b, 50, 2, big))
    };
    let (shoff, shnum) = (shoff as usize, shnum as usize);
    let ent = if is64 { 64 } else { 40 };
    let sections: Vec<_> = (0..shnum)
        .map(|i| {
            let h = shoff + i * ent;
            let name = rd(b, h, 4, big);
            if is64 {
                (h, rd(b, h + 24, 8, big), rd(b, h + 32, 8, big), name)
            } else {
                (h, rd(b, h + 16, 4, big), rd(b, h + 20, 4, big), name)
            }
        })
        .collect();
    let names = sections[shstrndx as usize];
    let names = (names.1, names.2);
    let named = |want: &[u8]| {
        sections.iter().find_map(|s| {
            let at = (names.0 + s.3) as usize;
            let n = &b[at..];
            let n = &n[..n.iter().position(|&c| c == 0).unwrap()];
            (n == want).then_some((s.1, s.2))
        })
    };
    Layout {
        is64,
        big,
        shoff,
        shnum,
        symtab: named(b".symtab"),
        strtab: named(b".strtab"),
        sections,
        names,
    }
}

/// One random damage to `b` (laid out as `l`, the undamaged source).
fn damage(rng: &mut Rng, l: &Layout, b: &mut Vec<u8>) {
    let len = b.len() as u64;
    let big = l.big;
    let word = if l.is64 { 8 } else { 4 };
    let some_section = |rng: &mut Rng| l.sections[rng.below(l.shnum)];
    let interesting = |rng: &mut Rng| -> u64 {
        let s = l.sections[rng.below(l.shnum)];
        match rng.below(12) {
            0 => 0,
            1 => len,
            2 => len - 1,
            3 => len + 1,
            4 => s.1,
            5 => s.2,
            6 => s.1 + s.2,
            7 => s.3,
            8 => u64::MAX,
            9 => u64::from(u32::MAX),
            10 => rng.next() % len,
            _ => rng.next() % 64,
        }
    };
    match rng.below(10) {
        // A header byte.
        0 => {
            let at = 16 + rng.below(48);
            b[at] = rng.next() as u8;
        }
        // A field of a section header: name, offset or size.
        1 | 2 => {
            let (h, ..) = some_section(rng);
            let v = interesting(rng);
            match rng.below(3) {
                0 => wr(b, h, 4, v, big),
                1 => wr(b, h + if l.is64 { 24 } else { 16 }, word, v, big),
                _ => wr(b, h + if l.is64 { 32 } else { 20 }, word, v, big),
            }
        }
        // A section renamed to another's name (duplicates, wanted names moved).
        3 => {
            let (h, ..) = some_section(rng);
            let (.., name) = some_section(rng);
            wr(b, h, 4, name, big);
        }
        // A byte of the section-name table.
        4 => {
            let at = (l.names.0 + rng.next() % l.names.1.max(1)) as usize;
            if at < b.len() {
                b[at] = *rng.pick(&[0, b'_', b'x', 0xff]);
            }
        }
        // A field of a symbol: name, value or section index.
        5 | 6 => {
            let Some((off, size)) = l.symtab else { return };
            let ent = if l.is64 { 24 } else { 16 };
            let n = (size / ent).max(1);
            let at = (off + (rng.next() % n) * ent) as usize;
            match rng.below(3) {
                0 => wr(b, at, 4, interesting(rng), big),
                1 => wr(
                    b,
                    at + if l.is64 { 8 } else { 4 },
                    word,
                    interesting(rng),
                    big,
                ),
                _ => {
                    let idx = match rng.below(4) {
                        0 => rng.below(l.shnum + 3) as u64,
                        1 => *rng.pick(&[0u64, 0xfff1, 0xffff, 0xff00]),
                        _ => rng.below(l.shnum) as u64,
                    };
                    wr(b, at + if l.is64 { 6 } else { 14 }, 2, idx, big);
                }
            }
        }
        // The string table: a `__crc_` name planted, a byte changed, the last NUL gone.
        7 => {
            let Some((off, size)) = l.strtab else { return };
            let at = (off + rng.next() % size.max(1)) as usize;
            match rng.below(3) {
                0 => {
                    for (i, &c) in b"__crc_".iter().enumerate() {
                        if at + i < b.len() {
                            b[at + i] = c;
                        }
                    }
                }
                1 => {
                    let at = at.min(b.len() - 1);
                    b[at] = *rng.pick(&[0, b'a', 0xff]);
                }
                _ => {
                    let last = (off + size).saturating_sub(1) as usize;
                    if last < b.len() {
                        b[last] = b'z';
                    }
                }
            }
        }
        // Truncated (at a section boundary or anywhere).
        8 => {
            let s = some_section(rng);
            let cut = match rng.below(4) {
                0 => s.1,
                1 => s.1 + s.2,
                2 => s.0 as u64 + rng.next() % 64,
                _ => rng.next() % len,
            };
            b.truncate((cut as usize).clamp(HEAD + 1, b.len()));
        }
        // A few bytes anywhere, or in the section table.
        _ => {
            for _ in 0..1 + rng.below(8) {
                let at = if rng.below(2) == 0 {
                    l.shoff + rng.below(l.shnum * if l.is64 { 64 } else { 40 })
                } else {
                    rng.below(b.len())
                };
                if at < b.len() {
                    b[at] = rng.next() as u8;
                }
            }
        }
    }
}

fn synthetic(class: Class, endian: Endian) -> Vec<u8> {
    let mut e = elfgen::Elf::new(class, endian, elfgen::EM_X86_64)
        .modinfo(&[
            "license=GPL",
            "alias=pci:v*d*",
            "softdep=pre: a",
            "weakdep=b",
        ])
        .ksymtab(&["exported_one", "exported_two"])
        .sym(Sym::defined("local_text"))
        .sym(Sym::crc_tab("exported_one", 0x1234_5678))
        .sym(Sym::crc("exported_two", 0x9abc))
        .sym(Sym::weak("maybe_there"))
        .undefs(&["printk", "kmalloc", "kfree"])
        .versions(&[(0x11, "printk"), (0x22, "module_layout"), (0x33, "kmalloc")]);
    e.extra_sections
        .push((".text.more".into(), vec![0x90; 300]));
    e.build()
}

#[test]
fn damaged_modules_read_in_part_as_whole() {
    let dir = debian::module_dir().expect("the Debian tree");
    let mut sources: Vec<(String, Vec<u8>, usize)> = [
        ("kernel/lib/crc16.ko", 1500),
        ("kernel/fs/mbcache.ko", 1500),
        ("kernel/fs/nls/nls_cp437.ko", 1500),
        ("kernel/fs/fat/vfat.ko", 1000),
        ("kernel/drivers/usb/storage/uas.ko", 1000),
        ("kernel/drivers/block/loop.ko", 600),
        ("kernel/fs/jbd2/jbd2.ko", 300),
        ("kernel/drivers/ata/libata.ko", 150),
    ]
    .iter()
    .map(|&(p, n)| (p.to_string(), std::fs::read(dir.join(p)).unwrap(), n))
    .collect();
    for class in [Class::Elf32, Class::Elf64] {
        for endian in [Endian::Little, Endian::Big] {
            let what = format!("synthetic {class:?} {endian:?}");
            sources.push((what, synthetic(class, endian), 1500));
        }
    }
    let mut rng = Rng(0x5eed_0f5a_a5e5);
    let (mut variants, mut in_part) = (0, 0);
    for (name, src, n) in &sources {
        assert!(check(src, name), "{name}: read whole");
        let l = layout(src);
        for i in 0..*n {
            let mut b = src.clone();
            for _ in 0..1 + rng.below(3) {
                damage(&mut rng, &l, &mut b);
            }
            variants += 1;
            if check(&b, &format!("{name}, variant {i}")) {
                in_part += 1;
            }
        }
    }
    // Most damage leaves a file the plan can still read in part.
    assert!(
        in_part * 2 > variants,
        "{in_part} of {variants} read in part"
    );
}
