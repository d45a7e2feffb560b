//! The section table of an ELF64 little-endian module, just enough to aim damage at
//! chosen fields (the sources are real modules): where each section header is, the
//! section's name, offset and size.

/// The `n`-byte little-endian value at `o`.
pub fn rd(b: &[u8], o: usize, n: usize) -> u64 {
    let mut v = 0u64;
    for (k, x) in b[o..o + n].iter().enumerate() {
        v |= u64::from(*x) << (8 * k);
    }
    v
}

/// Writes the low `n` bytes of `v` at `o`, little-endian.
pub fn wr(b: &mut [u8], o: usize, n: usize, v: u64) {
    for k in 0..n {
        b[o + k] = (v >> (8 * k)) as u8;
    }
}

#[derive(Clone, Debug)]
pub struct Section {
    pub index: usize,
    pub name: String,
    /// `sh_name`: the name's offset in the section name table.
    pub name_off: u32,
    /// Offset of this section's header in the file.
    pub header: usize,
    pub offset: u64,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub shoff: usize,
    pub shnum: usize,
    pub shstrndx: usize,
    pub sections: Vec<Section>,
}

pub fn layout(b: &[u8]) -> Layout {
    assert_eq!(&b[..6], b"\x7fELF\x02\x01", "the sources are ELF64 LE");
    let shoff = rd(b, 0x28, 8) as usize;
    let shnum = rd(b, 0x3c, 2) as usize;
    let shstrndx = rd(b, 0x3e, 2) as usize;
    let names = rd(b, shoff + shstrndx * 64 + 24, 8) as usize;
    let sections = (0..shnum)
        .map(|i| {
            let h = shoff + i * 64;
            let name_off = rd(b, h, 4) as u32;
            let n = names + name_off as usize;
            let end = n + b[n..].iter().position(|&c| c == 0).unwrap();
            Section {
                index: i,
                name: String::from_utf8_lossy(&b[n..end]).into_owned(),
                name_off,
                header: h,
                offset: rd(b, h + 24, 8),
                size: rd(b, h + 32, 8),
            }
        })
        .collect();
    Layout {
        shoff,
        shnum,
        shstrndx,
        sections,
    }
}

impl Layout {
    pub fn find(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
    /// The bytes of the section `name`, if it has any.
    pub fn range(&self, name: &str) -> Option<std::ops::Range<usize>> {
        let s = self.find(name)?;
        (s.size > 0).then(|| s.offset as usize..(s.offset + s.size) as usize)
    }
}
