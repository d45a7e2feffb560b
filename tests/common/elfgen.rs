//! A small writer for synthetic kernel modules (relocatable ELF files), just rich enough
//! for depmod: `.modinfo`, exports (`__crc_*` symbols with an absolute value or a word
//! in `__kcrctab`, or a `__ksymtab_strings` section), undefined (GLOBAL/WEAK) symbols,
//! `__versions`, `.symtab`, `.strtab`, `.shstrtab`. ELF32/ELF64, little/big endian.
//!
//! Layout: ELF header; section contents in section order (each aligned to 8); the section
//! header table (aligned to 8) at the end. Section 0 is the null section; `.shstrtab` is
//! the last section. Only sections with content are emitted.

/// ELF class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

/// Byte order of every multi-byte field of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

pub const EM_386: u16 = 3;
pub const EM_SPARC: u16 = 2;
pub const EM_MIPS: u16 = 8;
pub const EM_PPC64: u16 = 21;
pub const EM_S390: u16 = 22;
pub const EM_ARM: u16 = 40;
pub const EM_SPARCV9: u16 = 43;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_RISCV: u16 = 243;

pub const SHN_UNDEF: u16 = 0;
pub const SHN_ABS: u16 = 0xfff1;
pub const STB_LOCAL: u8 = 0;
pub const STB_GLOBAL: u8 = 1;
pub const STB_WEAK: u8 = 2;
pub const STT_NOTYPE: u8 = 0;
pub const STT_OBJECT: u8 = 1;
pub const STT_FUNC: u8 = 2;
pub const STT_REGISTER: u8 = 13;

/// One `.symtab` entry (index 0, the null symbol, is implicit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sym {
    /// An undefined symbol (a dependency); `weak` selects STB_WEAK instead of STB_GLOBAL.
    Undef { name: String, weak: bool },
    /// `__crc_<name>` with `st_shndx = SHN_ABS` and `st_value = crc`.
    CrcAbs { name: String, crc: u64 },
    /// `__crc_<name>` pointing into the `__kcrctab` section, which holds `crc` as a
    /// 4-byte word (file endianness).
    CrcTab { name: String, crc: u32 },
    /// A defined function symbol in `.text` (noise; depmod ignores it unless its name
    /// starts with `__crc_`).
    Defined { name: String },
    /// Anything: raw fields.
    Raw {
        name: String,
        info: u8,
        shndx: u16,
        value: u64,
    },
    /// Raw fields with a raw `st_name` offset into `.strtab` (e.g. out of range).
    RawName {
        st_name: u32,
        info: u8,
        shndx: u16,
        value: u64,
    },
}

impl Sym {
    pub fn undef(name: &str) -> Sym {
        Sym::Undef {
            name: name.into(),
            weak: false,
        }
    }
    pub fn weak(name: &str) -> Sym {
        Sym::Undef {
            name: name.into(),
            weak: true,
        }
    }
    pub fn crc(name: &str, crc: u64) -> Sym {
        Sym::CrcAbs {
            name: name.into(),
            crc,
        }
    }
    pub fn crc_tab(name: &str, crc: u32) -> Sym {
        Sym::CrcTab {
            name: name.into(),
            crc,
        }
    }
    pub fn defined(name: &str) -> Sym {
        Sym::Defined { name: name.into() }
    }
}

/// A synthetic module. Build the bytes with [`Elf::build`].
#[derive(Clone, Debug)]
pub struct Elf {
    pub class: Class,
    pub endian: Endian,
    pub machine: u16,
    /// `.modinfo` records, each written followed by one NUL. `None` = no section.
    pub modinfo: Option<Vec<String>>,
    /// Raw `.modinfo` content; overrides `modinfo` when set.
    pub modinfo_raw: Option<Vec<u8>>,
    /// `__ksymtab_strings` entries (each NUL-terminated). `None` = no section.
    pub ksymtab_strings: Option<Vec<String>>,
    /// Raw `__ksymtab_strings` content; overrides `ksymtab_strings`.
    pub ksymtab_strings_raw: Option<Vec<u8>>,
    /// `.symtab` entries after the null symbol. Empty and `force_symtab` false = no
    /// `.symtab`/`.strtab`.
    pub symbols: Vec<Sym>,
    pub force_symtab: bool,
    /// `__versions` entries (crc, name). `None` = no section. Names longer than the
    /// field (56 bytes on ELF64, 60 on ELF32) are truncated without a NUL.
    pub versions: Option<Vec<(u64, String)>>,
    /// Raw `__versions` content; overrides `versions`.
    pub versions_raw: Option<Vec<u8>>,
    /// Extra sections (name, content) appended after the standard ones.
    pub extra_sections: Vec<(String, Vec<u8>)>,
}

impl Default for Elf {
    fn default() -> Self {
        Elf::new(Class::Elf64, Endian::Little, EM_X86_64)
    }
}

struct Section {
    name: String,
    sh_type: u32,
    flags: u64,
    data: Vec<u8>,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

impl Elf {
    pub fn new(class: Class, endian: Endian, machine: u16) -> Elf {
        Elf {
            class,
            endian,
            machine,
            modinfo: None,
            modinfo_raw: None,
            ksymtab_strings: None,
            ksymtab_strings_raw: None,
            symbols: Vec::new(),
            force_symtab: false,
            versions: None,
            versions_raw: None,
            extra_sections: Vec::new(),
        }
    }

    /// x86-64 (ELF64 LE).
    pub fn x86_64() -> Elf {
        Elf::new(Class::Elf64, Endian::Little, EM_X86_64)
    }

    pub fn modinfo(mut self, records: &[&str]) -> Elf {
        self.modinfo = Some(records.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn ksymtab(mut self, names: &[&str]) -> Elf {
        self.ksymtab_strings = Some(names.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn sym(mut self, s: Sym) -> Elf {
        self.symbols.push(s);
        self
    }

    pub fn undefs(mut self, names: &[&str]) -> Elf {
        for n in names {
            self.symbols.push(Sym::undef(n));
        }
        self
    }

    pub fn versions(mut self, v: &[(u64, &str)]) -> Elf {
        self.versions = Some(v.iter().map(|(c, n)| (*c, n.to_string())).collect());
        self
    }

    fn is64(&self) -> bool {
        self.class == Class::Elf64
    }

    fn u16b(&self, v: u16) -> [u8; 2] {
        match self.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    fn u32b(&self, v: u32) -> [u8; 4] {
        match self.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    fn u64b(&self, v: u64) -> [u8; 8] {
        match self.endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    /// An address-sized field (4 bytes on ELF32, truncating; 8 on ELF64).
    fn addr(&self, out: &mut Vec<u8>, v: u64) {
        if self.is64() {
            out.extend_from_slice(&self.u64b(v));
        } else {
            out.extend_from_slice(&self.u32b(v as u32));
        }
    }

    fn put_sym(&self, symtab: &mut Vec<u8>, st_name: u32, info: u8, shndx: u16, value: u64) {
        if self.is64() {
            symtab.extend_from_slice(&self.u32b(st_name));
            symtab.push(info);
            symtab.push(0);
            symtab.extend_from_slice(&self.u16b(shndx));
            symtab.extend_from_slice(&self.u64b(value));
            symtab.extend_from_slice(&self.u64b(0));
        } else {
            symtab.extend_from_slice(&self.u32b(st_name));
            symtab.extend_from_slice(&self.u32b(value as u32));
            symtab.extend_from_slice(&self.u32b(0));
            symtab.push(info);
            symtab.push(0);
            symtab.extend_from_slice(&self.u16b(shndx));
        }
    }

    /// Serialise the module.
    pub fn build(&self) -> Vec<u8> {
        let mut secs: Vec<Section> = Vec::new();
        let progbits = |name: &str, data: Vec<u8>, flags: u64, align: u64| Section {
            name: name.into(),
            sh_type: 1,
            flags,
            data,
            link: 0,
            info: 0,
            align,
            entsize: 0,
        };
        let has_defined = self
            .symbols
            .iter()
            .any(|s| matches!(s, Sym::Defined { .. }));
        let text_idx = if has_defined {
            secs.push(progbits(".text", vec![0xc3; 16], 6, 16));
            Some(secs.len())
        } else {
            None
        };
        if let Some(raw) = &self.modinfo_raw {
            secs.push(progbits(".modinfo", raw.clone(), 2, 1));
        } else if let Some(recs) = &self.modinfo {
            let mut d = Vec::new();
            for r in recs {
                d.extend_from_slice(r.as_bytes());
                d.push(0);
            }
            secs.push(progbits(".modinfo", d, 2, 1));
        }
        if let Some(raw) = &self.ksymtab_strings_raw {
            secs.push(progbits("__ksymtab_strings", raw.clone(), 0x32, 1));
        } else if let Some(names) = &self.ksymtab_strings {
            let mut d = Vec::new();
            for n in names {
                d.extend_from_slice(n.as_bytes());
                d.push(0);
            }
            secs.push(progbits("__ksymtab_strings", d, 0x32, 1));
        }
        // __kcrctab words, in symbol order.
        let mut kcrc = Vec::new();
        let mut kcrc_off = Vec::new();
        for s in &self.symbols {
            if let Sym::CrcTab { crc, .. } = s {
                kcrc_off.push(kcrc.len() as u64);
                kcrc.extend_from_slice(&self.u32b(*crc));
            }
        }
        let kcrc_idx = if kcrc.is_empty() {
            None
        } else {
            secs.push(progbits("__kcrctab", kcrc, 2, 4));
            Some(secs.len())
        };
        if let Some(raw) = &self.versions_raw {
            secs.push(progbits("__versions", raw.clone(), 2, 8));
        } else if let Some(vers) = &self.versions {
            let namelen = if self.is64() { 56 } else { 60 };
            let mut d = Vec::new();
            for (crc, name) in vers {
                self.addr(&mut d, *crc);
                let mut nb = name.as_bytes().to_vec();
                nb.truncate(namelen);
                nb.resize(namelen, 0);
                d.extend_from_slice(&nb);
            }
            secs.push(progbits(
                "__versions",
                d,
                2,
                if self.is64() { 8 } else { 4 },
            ));
        }
        for (name, data) in &self.extra_sections {
            secs.push(progbits(name, data.clone(), 0, 1));
        }
        if !self.symbols.is_empty() || self.force_symtab {
            let mut strtab = vec![0u8];
            let entsize = if self.is64() { 24 } else { 16 };
            let mut symtab = vec![0u8; entsize];
            let mut kcrc_i = 0;
            for s in &self.symbols {
                if let Sym::RawName {
                    st_name,
                    info,
                    shndx,
                    value,
                } = s
                {
                    self.put_sym(&mut symtab, *st_name, *info, *shndx, *value);
                    continue;
                }
                let (name, info, shndx, value) = match s {
                    Sym::Undef { name, weak } => (
                        name.clone(),
                        (if *weak { STB_WEAK } else { STB_GLOBAL }) << 4 | STT_NOTYPE,
                        SHN_UNDEF,
                        0,
                    ),
                    Sym::CrcAbs { name, crc } => (
                        format!("__crc_{name}"),
                        STB_GLOBAL << 4 | STT_NOTYPE,
                        SHN_ABS,
                        *crc,
                    ),
                    Sym::CrcTab { name, .. } => {
                        let off = kcrc_off[kcrc_i];
                        kcrc_i += 1;
                        (
                            format!("__crc_{name}"),
                            STB_GLOBAL << 4 | STT_OBJECT,
                            kcrc_idx.unwrap() as u16,
                            off,
                        )
                    }
                    Sym::Defined { name } => (
                        name.clone(),
                        STB_GLOBAL << 4 | STT_FUNC,
                        text_idx.unwrap() as u16,
                        0,
                    ),
                    Sym::Raw {
                        name,
                        info,
                        shndx,
                        value,
                    } => (name.clone(), *info, *shndx, *value),
                    Sym::RawName { .. } => unreachable!(),
                };
                let st_name = if name.is_empty() {
                    0
                } else {
                    let o = strtab.len() as u32;
                    strtab.extend_from_slice(name.as_bytes());
                    strtab.push(0);
                    o
                };
                self.put_sym(&mut symtab, st_name, info, shndx, value);
            }
            let strtab_idx = secs.len() + 2; // after .symtab
            secs.push(Section {
                name: ".symtab".into(),
                sh_type: 2,
                flags: 0,
                data: symtab,
                link: strtab_idx as u32,
                info: 1,
                align: 8,
                entsize: entsize as u64,
            });
            secs.push(Section {
                name: ".strtab".into(),
                sh_type: 3,
                flags: 0,
                data: strtab,
                link: 0,
                info: 0,
                align: 1,
                entsize: 0,
            });
        }
        // .shstrtab (names of all sections, itself included).
        let mut shstr = vec![0u8];
        let mut name_off = Vec::new();
        for s in &secs {
            name_off.push(shstr.len() as u32);
            shstr.extend_from_slice(s.name.as_bytes());
            shstr.push(0);
        }
        let shstr_name = shstr.len() as u32;
        shstr.extend_from_slice(b".shstrtab\0");
        name_off.push(shstr_name);
        secs.push(Section {
            name: ".shstrtab".into(),
            sh_type: 3,
            flags: 0,
            data: shstr,
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        });

        let ehsize = if self.is64() { 64 } else { 52 };
        let shentsize = if self.is64() { 64 } else { 40 };
        let mut out = vec![0u8; ehsize];
        let mut offsets = Vec::new();
        for s in &secs {
            while out.len() % 8 != 0 {
                out.push(0);
            }
            offsets.push(out.len() as u64);
            out.extend_from_slice(&s.data);
        }
        while out.len() % 8 != 0 {
            out.push(0);
        }
        let shoff = out.len() as u64;
        out.extend(std::iter::repeat_n(0u8, shentsize)); // null section header
        for (i, s) in secs.iter().enumerate() {
            let mut h = Vec::new();
            h.extend_from_slice(&self.u32b(name_off[i]));
            h.extend_from_slice(&self.u32b(s.sh_type));
            self.addr(&mut h, s.flags);
            self.addr(&mut h, 0); // sh_addr
            self.addr(&mut h, offsets[i]);
            self.addr(&mut h, s.data.len() as u64);
            h.extend_from_slice(&self.u32b(s.link));
            h.extend_from_slice(&self.u32b(s.info));
            self.addr(&mut h, s.align);
            self.addr(&mut h, s.entsize);
            assert_eq!(h.len(), shentsize);
            out.extend_from_slice(&h);
        }
        let shnum = secs.len() as u16 + 1;
        let shstrndx = secs.len() as u16; // the last one
                                          // ELF header.
        let mut eh = Vec::new();
        eh.extend_from_slice(b"\x7fELF");
        eh.push(if self.is64() { 2 } else { 1 });
        eh.push(if self.endian == Endian::Little { 1 } else { 2 });
        eh.push(1); // EI_VERSION
        eh.extend_from_slice(&[0; 9]);
        eh.extend_from_slice(&self.u16b(1)); // ET_REL
        eh.extend_from_slice(&self.u16b(self.machine));
        eh.extend_from_slice(&self.u32b(1)); // EV_CURRENT
        self.addr(&mut eh, 0); // e_entry
        self.addr(&mut eh, 0); // e_phoff
        self.addr(&mut eh, shoff);
        eh.extend_from_slice(&self.u32b(0)); // e_flags
        eh.extend_from_slice(&self.u16b(ehsize as u16));
        eh.extend_from_slice(&self.u16b(0)); // e_phentsize
        eh.extend_from_slice(&self.u16b(0)); // e_phnum
        eh.extend_from_slice(&self.u16b(shentsize as u16));
        eh.extend_from_slice(&self.u16b(shnum));
        eh.extend_from_slice(&self.u16b(shstrndx));
        assert_eq!(eh.len(), ehsize);
        out[..ehsize].copy_from_slice(&eh);
        out
    }
}
