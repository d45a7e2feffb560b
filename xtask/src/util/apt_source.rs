//! The Debian mirror this machine's apt already uses.
//!
//! xtask keeps private apt states (its own sources list, lists and cache) to fetch
//! packages of other suites and architectures. Rather than naming a mirror, it
//! takes the URI of the machine's own Debian entries and changes only the suite:
//! the entry serving e.g. `bookworm` gives the main archive (for `trixie` too), the
//! one serving `bookworm-security` gives the security archive. Both apt formats are
//! read, in apt's order: one-line `sources.list` and `sources.list.d/*.list`, and
//! deb822 `sources.list.d/*.sources`. Disabled entries and other vendors' repos
//! (Google's, NodeSource's …) are skipped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's release codenames and suite aliases: an entry whose suite is none of
/// these (with an optional `-updates`, `-security` … suffix) is not Debian's.
const DEBIAN_SUITES: &[&str] = &[
    "buzz",
    "rex",
    "bo",
    "hamm",
    "slink",
    "potato",
    "woody",
    "sarge",
    "etch",
    "lenny",
    "squeeze",
    "wheezy",
    "jessie",
    "stretch",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
    "experimental",
];

/// Suffixes of suites served by the main archive (`bookworm-updates` …).
const MAIN_SUFFIXES: &[&str] = &[
    "updates",
    "backports",
    "backports-sloppy",
    "proposed-updates",
];

/// One source entry (a one-line `deb` line or a deb822 stanza).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// The `Signed-By` value (or `signed-by=` option), empty when none: only used
    /// to prefer Debian's own keyring when several entries qualify.
    pub signed_by: String,
}

/// Which Debian archive an entry serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    /// Releases, point releases, `-updates`, `-backports`.
    Main,
    /// `-security` (and the old `CODENAME/updates`).
    Security,
}

impl Archive {
    fn name(self) -> &'static str {
        match self {
            Archive::Main => "main archive",
            Archive::Security => "security archive",
        }
    }

    /// The usual last path component of the archive's URI.
    fn path_name(self) -> &'static str {
        match self {
            Archive::Main => "debian",
            Archive::Security => "debian-security",
        }
    }
}

/// Parses deb822 `.sources` text: stanzas separated by blank lines, `#` comment
/// lines ignored, continuation lines folded into their field. Stanzas with
/// `Enabled: no` are left out.
pub fn parse_deb822(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let flush = |fields: &mut Vec<(String, String)>, entries: &mut Vec<Entry>| {
        if let Some(entry) = stanza_entry(fields) {
            entries.push(entry);
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut fields, &mut entries);
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    flush(&mut fields, &mut entries);
    entries
}

/// One deb822 stanza as an entry; `None` when disabled or without a URI.
fn stanza_entry(fields: &[(String, String)]) -> Option<Entry> {
    let get = |name: &str| {
        fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let words = |name: &str| get(name).split_whitespace().map(String::from).collect();
    if !is_true(get("enabled")) {
        return None;
    }
    let entry = Entry {
        types: words("types"),
        uris: words("uris"),
        suites: words("suites"),
        components: words("components"),
        signed_by: get("signed-by").to_string(),
    };
    (!entry.uris.is_empty()).then_some(entry)
}

/// apt's reading of a boolean field (an absent one is true).
fn is_true(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "no" | "false" | "off" | "disable" | "without" | "0"
    )
}

/// Parses one-line `sources.list` text: `TYPE [ OPTIONS ] URI SUITE [COMPONENT…]`,
/// `#` starting a comment anywhere on a line.
pub fn parse_one_line(text: &str) -> Vec<Entry> {
    text.lines().filter_map(one_line_entry).collect()
}

fn one_line_entry(line: &str) -> Option<Entry> {
    let line = line.split('#').next().unwrap_or("").trim();
    let (kind, mut rest) = line.split_once(char::is_whitespace)?;
    let mut signed_by = String::new();
    rest = rest.trim_start();
    if let Some(options) = rest.strip_prefix('[') {
        let (options, after) = options.split_once(']')?;
        for option in options.split_whitespace() {
            if let Some((name, value)) = option.split_once('=') {
                match name.to_ascii_lowercase().as_str() {
                    "enabled" if !is_true(value) => return None,
                    "signed-by" => signed_by = value.to_string(),
                    _ => {}
                }
            }
        }
        rest = after;
    }
    let mut words = rest.split_whitespace().map(String::from);
    let uri = words.next()?;
    let suite = words.next()?;
    Some(Entry {
        types: vec![kind.to_string()],
        uris: vec![uri],
        suites: vec![suite],
        components: words.collect(),
        signed_by,
    })
}

/// The archive a suite name belongs to, if it is one of Debian's.
fn suite_archive(suite: &str) -> Option<Archive> {
    let suite = suite.trim_end_matches('/');
    // The old security layout, `buster/updates`.
    if let Some((base, "updates")) = suite.split_once('/') {
        return DEBIAN_SUITES.contains(&base).then_some(Archive::Security);
    }
    let (base, suffix) = suite.split_once('-').unwrap_or((suite, ""));
    if !DEBIAN_SUITES.contains(&base) {
        return None;
    }
    if suffix == "security" {
        Some(Archive::Security)
    } else if suffix.is_empty() || MAIN_SUFFIXES.contains(&suffix) {
        Some(Archive::Main)
    } else {
        None
    }
}

/// How likely `uri` of `entry` is Debian's own `archive` (higher is better); `None`
/// when it does not serve that archive at all.
fn score(entry: &Entry, uri: &str, archive: Archive) -> Option<u32> {
    let debian_type = entry.types.iter().any(|t| t == "deb" || t == "deb-src");
    let serves = entry
        .suites
        .iter()
        .any(|s| suite_archive(s) == Some(archive));
    let has_main = entry.components.iter().any(|c| c == "main");
    if !debian_type || !serves || !has_main || uri.starts_with("cdrom:") {
        return None;
    }
    let mut score = 0;
    if uri.trim_end_matches('/').rsplit('/').next() == Some(archive.path_name()) {
        score += 2;
    }
    if entry.signed_by.is_empty() || entry.signed_by.contains("debian-archive-keyring") {
        score += 1;
    }
    Some(score)
}

/// The URI (without a trailing slash) that serves `archive` among `entries` (in
/// apt's order): the best-scoring one, the first on ties.
pub fn find(entries: &[Entry], archive: Archive) -> Option<String> {
    let mut best: Option<(u32, &str)> = None;
    for entry in entries {
        for uri in &entry.uris {
            if let Some(s) = score(entry, uri, archive) {
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, uri));
                }
            }
        }
    }
    best.map(|(_, uri)| uri.trim_end_matches('/').to_string())
}

/// Where apt reads its sources: `Dir::Etc::SourceList` and `Dir::Etc::SourceParts`
/// as `apt-config` resolves them (so `APT_CONFIG` is honoured), else the defaults.
fn source_locations() -> (PathBuf, PathBuf) {
    let mut list = PathBuf::from("/etc/apt/sources.list");
    let mut parts = PathBuf::from("/etc/apt/sources.list.d");
    let out = Command::new("apt-config")
        .args(["shell", "LIST", "Dir::Etc::SourceList/f"])
        .args(["PARTS", "Dir::Etc::SourceParts/d"])
        .output();
    if let Some(out) = out.ok().filter(|o| o.status.success()) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            // Through `components` to drop the trailing slash `/d` gives.
            let value: PathBuf = Path::new(value.trim_matches('\'')).components().collect();
            match name {
                "LIST" => list = value,
                "PARTS" => parts = value,
                _ => {}
            }
        }
    }
    (list, parts)
}

/// Every entry of the apt configuration at `list` and `parts`, in apt's order: the
/// main list, then the parts directory's files by name (only the names apt reads).
pub fn read_config(list: &Path, parts: &Path) -> Result<Vec<Entry>, String> {
    let mut entries = match fs::read_to_string(list) {
        Ok(text) => parse_one_line(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", list.display())),
    };
    let mut files: Vec<PathBuf> = match fs::read_dir(parts) {
        Ok(dir) => dir.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", parts.display())),
    };
    files.sort();
    for path in files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let apt_name = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        let parse: fn(&str) -> Vec<Entry> = if name.ends_with(".list") {
            parse_one_line
        } else if name.ends_with(".sources") {
            parse_deb822
        } else {
            continue;
        };
        if !apt_name {
            continue;
        }
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        entries.extend(parse(&text));
    }
    Ok(entries)
}

/// The URI of Debian's `archive` in this machine's apt configuration.
pub fn mirror(archive: Archive) -> Result<String, String> {
    let (list, parts) = source_locations();
    let entries = read_config(&list, &parts)?;
    find(&entries, archive).ok_or_else(|| {
        format!(
            "no enabled Debian {} in the apt configuration ({} and {}/*.list, *.sources): \
             xtask fetches packages from the mirror apt uses; add an entry for it \
             (e.g. a deb822 stanza with `Types: deb`, `URIs: <mirror>`, `Suites: {}`, \
             `Components: main`)",
            archive.name(),
            list.display(),
            parts.display(),
            match archive {
                Archive::Main => "bookworm",
                Archive::Security => "bookworm-security",
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
# The main archive, with a commented-out snapshot URI inside the stanza.
Types: deb deb-src
# URIs: http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

# A disabled stanza is not used, even first.
Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: https://vendor.example/node
Suites: nodistro
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBFmX
 -----END PGP PUBLIC KEY BLOCK-----
";

    #[test]
    fn deb822_stanzas() {
        let entries = parse_deb822(DEB822);
        assert_eq!(entries.len(), 3, "{entries:?}");
        assert_eq!(entries[0].types, ["deb", "deb-src"]);
        assert_eq!(entries[0].uris, ["http://mirror.example/debian/"]);
        assert_eq!(entries[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(entries[0].components, ["main", "contrib"]);
        assert_eq!(entries[1].suites, ["bookworm-security"]);
        assert_eq!(entries[2].uris, ["https://vendor.example/node"]);
        assert!(entries[2].signed_by.contains("BEGIN PGP"));
        assert_eq!(
            find(&entries, Archive::Main).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            find(&entries, Archive::Security).as_deref(),
            Some("http://mirror.example/debian-security")
        );
    }

    #[test]
    fn deb822_disabled_only() {
        let text = "Types: deb\nURIs: http://a.example/debian\nSuites: trixie\n\
                    Components: main\nEnabled: false\n";
        assert!(parse_deb822(text).is_empty());
        let commented = "# Types: deb\n# URIs: http://a.example/debian\n# Suites: trixie\n";
        assert!(parse_deb822(commented).is_empty());
    }

    #[test]
    fn one_line_format() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/vendor.gpg] https://download.example/linux/debian bookworm stable
deb-src [ arch=amd64 ] http://mirror.example/debian bookworm main non-free # trailing comment
deb http://security.example/debian-security/ bookworm-security main
deb http://old.example/debian-security buster/updates main

deb https://packages.example/cloud-sdk cloud-sdk main
";
        let entries = parse_one_line(text);
        assert_eq!(entries.len(), 5, "{entries:?}");
        assert_eq!(entries[0].components, ["stable"]);
        assert_eq!(entries[0].signed_by, "/usr/share/keyrings/vendor.gpg");
        assert_eq!(entries[1].types, ["deb-src"]);
        assert_eq!(entries[1].uris, ["http://mirror.example/debian"]);
        assert_eq!(entries[1].components, ["main", "non-free"]);
        // The vendor repo serves `bookworm` but not Debian's `main` component.
        assert_eq!(
            find(&entries, Archive::Main).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            find(&entries, Archive::Security).as_deref(),
            Some("http://security.example/debian-security")
        );
        assert_eq!(
            find(&entries[3..], Archive::Security).as_deref(),
            Some("http://old.example/debian-security")
        );
    }

    #[test]
    fn prefers_debian_over_vendor_with_codename() {
        // A vendor repo with a Debian codename and a `main` component, listed first.
        let text = "\
deb [signed-by=/usr/share/keyrings/vendor.gpg] https://packages.example/debian/12/prod bookworm main
deb http://mirror.example/debian bookworm main
";
        let entries = parse_one_line(text);
        assert_eq!(
            find(&entries, Archive::Main).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn non_debian_only() {
        let text = "deb http://archive.example/ubuntu jammy main\n\
                    deb https://deb.example/node_20.x nodistro main\n";
        let entries = parse_one_line(text);
        assert_eq!(entries.len(), 2);
        assert_eq!(find(&entries, Archive::Main), None);
        assert_eq!(find(&entries, Archive::Security), None);
    }

    #[test]
    fn suites() {
        assert_eq!(suite_archive("bookworm"), Some(Archive::Main));
        assert_eq!(suite_archive("trixie-updates"), Some(Archive::Main));
        assert_eq!(suite_archive("bookworm-backports"), Some(Archive::Main));
        assert_eq!(suite_archive("stable"), Some(Archive::Main));
        assert_eq!(suite_archive("bookworm-security"), Some(Archive::Security));
        assert_eq!(suite_archive("bullseye/updates"), Some(Archive::Security));
        assert_eq!(suite_archive("bookworm-pgdg"), None);
        assert_eq!(suite_archive("jammy"), None);
        assert_eq!(suite_archive("nodistro"), None);
    }

    #[test]
    fn config_files_in_apt_order() {
        let dir = std::env::temp_dir().join(format!("xtask-apt-source-{}", std::process::id()));
        let parts = dir.join("sources.list.d");
        fs::create_dir_all(&parts).unwrap();
        fs::write(
            parts.join("debian.sources"),
            "Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\nComponents: main\n",
        )
        .unwrap();
        // Files apt does not read: a disabled suffix and an invalid name.
        fs::write(
            parts.join("other.list.disabled"),
            "deb http://c.example/debian bookworm main\n",
        )
        .unwrap();
        fs::write(
            parts.join("bad name.list"),
            "deb http://d.example/debian bookworm main\n",
        )
        .unwrap();
        let entries = read_config(&dir.join("sources.list"), &parts).unwrap();
        assert_eq!(entries.len(), 1);
        fs::write(
            dir.join("sources.list"),
            "deb http://a.example/debian bookworm main\n",
        )
        .unwrap();
        let entries = read_config(&dir.join("sources.list"), &parts).unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(
            find(&entries, Archive::Main).as_deref(),
            Some("http://a.example/debian")
        );
    }
}
