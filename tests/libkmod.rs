//! libkmod reads our `.bin` indexes exactly as it reads kmod 34.2's.
//!
//! kmod's `modprobe`, systemd-udevd and dracut look modules up only through the five
//! `.bin` indexes (no text fallback), so a wrong byte there is a module that never
//! autoloads. On the real Debian tree (`tests/common/debian.rs`):
//!
//! * our `.bin` files are byte-identical to kmod 34.2's golden ones, and Debian's own
//!   kmod 30 depmod (which lays nodes out in post-order) writes the same keys, values
//!   and priorities into each of them (read back with `depmod::index::Reader`);
//! * Debian's libkmod `modprobe` (kmod 30), run with `-d ROOT -S KVER` and an empty
//!   config directory over a root holding our outputs and over one holding the golden
//!   files, prints the same stdout and stderr (root path replaced by a placeholder) and
//!   exits the same for: `--show-depends` of every module of modules.dep
//!   (modules.dep.bin), `-R` of every alias of modules.alias made concrete (wildcards
//!   filled in) plus the plain ones verbatim (modules.alias.bin), `--show-depends` of
//!   every `symbol:NAME` of modules.symbols (modules.symbols.bin), `--show-depends` of
//!   every built-in module (modules.builtin.bin) and `-R` of every built-in alias
//!   (modules.builtin.alias.bin), and a few names that do not exist;
//! * busybox `modprobe -D` (which reads the text files), run in a chroot of each root,
//!   resolves a sample of modules, aliases and symbols the same way.
//!
//! Queries are batched (`modprobe -a`) and run on two threads; a batch whose results
//! differ is re-run name by name to name the culprits, and a sample is always run name
//! by name too. On failure the scratch roots are kept and the message gives the exact
//! commands to reproduce.
//!
//! Binaries: `KMOD30_MODPROBE` (default `/usr/sbin/modprobe`), `KMOD30_DEPMOD` (default
//! `/usr/sbin/depmod`), `BUSYBOX` (default `/bin/busybox`, must be static).
//! The golden files are kmod 34.2's outputs, generated once into `target/golden/` and
//! checked against the sums in `tests/data/golden-debian-<KVER>.MANIFEST`
//! (`DEPMOD_GOLDEN_DIR` names a directory of them to use instead).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use common::debian::{self, first_difference, KVER};
use common::oracle;
use common::oracle::busybox::{busybox, Busybox};
use common::oracle::libkmod::{command_line, modprobe, output, Kmod, Lookup, Query};
use depmod::index::{Entry, Reader};

/// Worker threads for the queries (the CI machine has two cores).
const THREADS: usize = 2;
/// Names per `modprobe -a` invocation.
const BATCH: usize = 64;
/// Failures shown in a panic message.
const MAX_REPORTED: usize = 25;
/// The indexes libkmod reads.
const BIN_FILES: &[&str] = &[
    "modules.alias.bin",
    "modules.builtin.alias.bin",
    "modules.builtin.bin",
    "modules.dep.bin",
    "modules.symbols.bin",
];

// ---------------------------------------------------------------------------------
// Tools and inputs
// ---------------------------------------------------------------------------------

fn kmod30_depmod() -> PathBuf {
    oracle::tool(
        "KMOD30_DEPMOD",
        "/usr/sbin/depmod",
        "install Debian's kmod (`apt-get install kmod`)",
    )
}

/// kmod 34.2's outputs for the tree (generated once and checked against the committed
/// sums, `tests/common/debian.rs`).
fn golden() -> PathBuf {
    debian::golden_dir().unwrap_or_else(|e| panic!("{e}"))
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_text(path: &Path) -> String {
    String::from_utf8(read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Keeps the first occurrence of each string.
fn dedup(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// A module's name from its path: basename up to the first `.`, `-` → `_`.
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.split('.').next().unwrap_or(base).replace('-', "_")
}

/// Every module name of a modules.dep (or modules.builtin) text, in file order.
fn module_names(text: &str) -> Vec<String> {
    dedup(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| module_name(l.split(':').next().unwrap_or(l))),
    )
}

/// The second field of every `alias KEY MODULE` line, distinct, in file order.
fn alias_keys(text: &str) -> Vec<String> {
    dedup(text.lines().filter_map(|l| {
        let mut f = l.split_whitespace();
        match (f.next(), f.next()) {
            (Some("alias"), Some(key)) => Some(key.to_owned()),
            _ => None,
        }
    }))
}

fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// A concrete string that the fnmatch pattern matches: `*` becomes one of "", "0",
/// "1A" and `?` one of "0", "F" (by `variant`), a bracket expression its first member
/// (or, negated, a character outside it), `\x` is `x`.
fn concretize(pattern: &str, variant: usize) -> String {
    let star = ["", "0", "1A"][variant % 3];
    let question = ['0', 'F'][variant % 2];
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => out.push_str(star),
            '?' => out.push(question),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push(chars[i]);
            }
            '[' => match bracket(&chars[i + 1..]) {
                Some((c, used)) => {
                    out.push(c);
                    i += used;
                }
                None => out.push('['),
            },
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// For the bracket expression just after a `[`: a character it matches and how many
/// characters it spans up to and including its `]`. `None` if it is not closed.
fn bracket(rest: &[char]) -> Option<(char, usize)> {
    let negated = matches!(rest.first(), Some('!' | '^'));
    let mut j = usize::from(negated);
    let mut ranges: Vec<(char, char)> = Vec::new();
    loop {
        let c = *rest.get(j)?;
        if c == ']' && !ranges.is_empty() {
            break;
        }
        match (rest.get(j + 1), rest.get(j + 2)) {
            (Some('-'), Some(&end)) if end != ']' => {
                ranges.push((c, end));
                j += 3;
            }
            _ => {
                ranges.push((c, c));
                j += 1;
            }
        }
    }
    let inside = |ch: char| ranges.iter().any(|&(a, b)| a <= ch && ch <= b);
    let pick = if negated {
        "0123456789ABCDEFabcdefXYZxyz_"
            .chars()
            .find(|&ch| !inside(ch))?
    } else {
        ranges[0].0
    };
    Some((pick, j + 1))
}

// ---------------------------------------------------------------------------------
// Scratch roots
// ---------------------------------------------------------------------------------

/// A scratch directory under `target/tmp` (hard links into the cached tree work
/// there) with an empty config directory; removed at the end unless the test fails.
struct Scratch {
    dir: tempfile::TempDir,
    empty: PathBuf,
}

impl Scratch {
    fn new(label: &str) -> Self {
        let base = debian::target_dir().join("tmp");
        fs::create_dir_all(&base).unwrap();
        let dir = tempfile::Builder::new()
            .prefix(&format!("libkmod-{label}-"))
            .tempdir_in(&base)
            .unwrap();
        let empty = dir.path().join("empty.d");
        fs::create_dir(&empty).unwrap();
        Scratch { dir, empty }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh copy of the real tree at `<scratch>/<name>` (returns the root).
    fn tree(&self, name: &str) -> PathBuf {
        let root = self.path().join(name);
        debian::fresh_copy(&root)
            .unwrap_or_else(|e| panic!("preparing the Debian tree at {}: {e}", root.display()));
        root
    }

    /// ROOT_OURS: the tree with our depmod's outputs.
    fn ours(&self) -> PathBuf {
        let root = self.tree("ours");
        let out = output(
            Command::new(oracle::our_binary())
                .arg("-C")
                .arg(&self.empty)
                .arg("-b")
                .arg(&root)
                .arg(KVER),
        );
        assert!(
            out.status.success(),
            "our depmod failed ({}) on {}: {}",
            out.status,
            root.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        root
    }

    /// ROOT_GOLDEN: the tree with kmod 34.2's golden files.
    fn golden(&self) -> PathBuf {
        let root = self.tree("golden");
        let dir = moddir(&root);
        let golden = golden();
        for name in debian::golden_files().unwrap_or_else(|e| panic!("{e}")) {
            fs::copy(golden.join(&name), dir.join(&name))
                .unwrap_or_else(|e| panic!("copying golden {name}: {e}"));
        }
        root
    }

    /// ROOT_V30: the tree with Debian's kmod 30 depmod's outputs.
    fn kmod30(&self) -> PathBuf {
        let root = self.tree("v30");
        let bin = kmod30_depmod();
        let out = output(
            Command::new(&bin)
                .arg("-b")
                .arg(&root)
                .arg("-C")
                .arg(&self.empty)
                .arg(KVER),
        );
        assert!(
            out.status.success(),
            "{} failed ({}) on {}: {}",
            bin.display(),
            out.status,
            root.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        root
    }

    /// Passes if there are no failures; otherwise keeps the scratch directory (the
    /// reproduce commands refer to it) and panics listing them.
    fn finish(self, test: &str, failures: &[String]) {
        if failures.is_empty() {
            return;
        }
        let kept = self.dir.keep();
        let mut msg = format!(
            "{test}: {} failure(s); scratch roots kept in {} (remove by hand)\n",
            failures.len(),
            kept.display()
        );
        for f in failures.iter().take(MAX_REPORTED) {
            msg.push_str(f);
            msg.push('\n');
        }
        if failures.len() > MAX_REPORTED {
            msg.push_str(&format!("… and {} more\n", failures.len() - MAX_REPORTED));
        }
        panic!("{msg}");
    }
}

fn moddir(root: &Path) -> PathBuf {
    root.join("lib/modules").join(KVER)
}

// ---------------------------------------------------------------------------------
// Running queries
// ---------------------------------------------------------------------------------

/// `f` over every item on [`THREADS`] threads; results in item order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every item was run"))
        .collect()
}

/// Compares a query over ROOT_GOLDEN and ROOT_OURS.
struct Compare<'a, Q: Query> {
    query: Q,
    golden: &'a Path,
    ours: &'a Path,
}

/// The result of comparing a list of names.
#[derive(Default)]
struct Tally {
    /// Names queried.
    names: usize,
    /// modprobe invocations (both roots).
    runs: usize,
    /// Batches or names whose golden-side outcome was not a clean success.
    golden_unresolved: Vec<String>,
    failures: Vec<String>,
}

impl<Q: Query> Compare<'_, Q> {
    fn describe(&self, names: &[String], golden: &Lookup, ours: &Lookup) -> String {
        let (gp, ga) = self.query.command(self.golden, names);
        let (op, oa) = self.query.command(self.ours, names);
        let mut s = format!(
            "{} differs for {}:\n  golden: {}\n  ours:   {}\n",
            self.query.what(),
            if names.len() == 1 {
                format!("{:?}", names[0])
            } else {
                format!(
                    "a batch of {} names starting at {:?}",
                    names.len(),
                    names[0]
                )
            },
            command_line(&gp, &ga),
            command_line(&op, &oa)
        );
        if golden.status != ours.status {
            s.push_str(&format!(
                "  exit status: golden {:?}, ours {:?}\n",
                golden.status, ours.status
            ));
        }
        for (stream, g, o) in [
            ("stdout", &golden.stdout, &ours.stdout),
            ("stderr", &golden.stderr, &ours.stderr),
        ] {
            if let Some(d) = first_difference(g.as_bytes(), o.as_bytes()) {
                s.push_str(&format!("  {stream}: {d}\n"));
            }
        }
        s
    }

    /// Every name, in batches of [`BATCH`] (`-a`); a differing batch is re-run name by
    /// name. `must_resolve`: the golden side must succeed silently (checks the inputs).
    fn batched(&self, names: &[String], must_resolve: bool) -> Tally {
        let batches: Vec<&[String]> = names.chunks(BATCH).collect();
        let results = par_map(&batches, |batch| {
            let g = self.query.run(self.golden, batch);
            let o = self.query.run(self.ours, batch);
            let mut runs = 2;
            let mut failures = Vec::new();
            if g != o {
                for name in batch.iter() {
                    let one = std::slice::from_ref(name);
                    let (g1, o1) = (
                        self.query.run(self.golden, one),
                        self.query.run(self.ours, one),
                    );
                    runs += 2;
                    if g1 != o1 {
                        failures.push(self.describe(one, &g1, &o1));
                    }
                }
                if failures.is_empty() {
                    failures.push(self.describe(batch, &g, &o));
                }
            }
            let unresolved = (must_resolve && !g.clean_success()).then(|| {
                format!(
                    "golden side of {} did not resolve cleanly for the batch starting at \
                     {:?} (exit {:?}): {}",
                    self.query.what(),
                    batch[0],
                    g.status,
                    g.stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
                )
            });
            (runs, failures, unresolved)
        });
        let mut tally = Tally {
            names: names.len(),
            ..Tally::default()
        };
        for (runs, failures, unresolved) in results {
            tally.runs += runs;
            tally.failures.extend(failures);
            tally.golden_unresolved.extend(unresolved);
        }
        tally
    }

    /// Each name on its own; returns the tally and the golden outcomes.
    fn each(&self, names: &[String], must_resolve: bool) -> (Tally, Vec<Lookup>) {
        let results = par_map(names, |name| {
            let one = std::slice::from_ref(name);
            let g = self.query.run(self.golden, one);
            let o = self.query.run(self.ours, one);
            let failure = (g != o).then(|| self.describe(one, &g, &o));
            (g, failure)
        });
        let mut tally = Tally {
            names: names.len(),
            runs: 2 * names.len(),
            ..Tally::default()
        };
        let mut outcomes = Vec::new();
        for (name, (g, failure)) in names.iter().zip(results) {
            if must_resolve && !g.clean_success() {
                tally.golden_unresolved.push(format!(
                    "golden side of {} did not resolve {name:?} cleanly (exit {:?}): {}",
                    self.query.what(),
                    g.status,
                    g.stderr.trim()
                ));
            }
            tally.failures.extend(failure);
            outcomes.push(g);
        }
        (tally, outcomes)
    }
}

/// Adds a tally's problems to `failures` and prints a summary line.
fn account(label: &str, tally: Tally, failures: &mut Vec<String>) -> usize {
    eprintln!(
        "{label}: {} names, {} invocations, {} differences",
        tally.names,
        tally.runs,
        tally.failures.len()
    );
    failures.extend(tally.failures);
    failures.extend(tally.golden_unresolved);
    tally.names
}

/// Every `step`-th item (starting with the first).
fn every<T: Clone>(items: &[T], step: usize) -> Vec<T> {
    items.iter().step_by(step).cloned().collect()
}

/// Names that exist nowhere, to compare the error paths.
fn missing_names() -> Vec<String> {
    [
        "no_such_module_xyz",
        "no-such-module-xyz",
        "symbol:no_such_symbol_xyz",
        "pci:v0000FFFEd0000FFFEsv0000FFFEsd0000FFFEbcFEscFEiFE",
        "usb:vFFFEpFFFEd0000dcFEdscFEdpFEicFEiscFEipFEinFE",
        "char-major-999-999",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Every `alias KEY` of the golden modules.alias, as query strings: every key made
/// concrete, plus every plain key verbatim and every 20th wildcard key verbatim.
/// Returns (queries that must resolve, verbatim wildcard keys).
fn alias_queries(keys: &[String]) -> (Vec<String>, Vec<String>) {
    let mut resolving = Vec::new();
    let mut verbatim_wild = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        if has_wildcard(key) {
            resolving.push(concretize(key, i));
            if i % 20 == 0 {
                verbatim_wild.push(key.clone());
            }
        } else {
            resolving.push(key.clone());
        }
    }
    (dedup(resolving), dedup(verbatim_wild))
}

fn index_entries(path: &Path) -> Result<Vec<Entry>, String> {
    let bytes = read(path);
    Reader::new(&bytes)
        .and_then(|r| r.entries())
        .map_err(|e| format!("{}: {e:?}", path.display()))
}

fn show_key(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(key))
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

/// The core claim: our five `.bin` files are kmod 34.2's, byte for byte.
#[test]
fn bin_indexes_are_byte_identical_to_kmod_34_2() {
    let scratch = Scratch::new("bin");
    let ours = moddir(&scratch.ours());
    let golden = golden();
    let mut failures = Vec::new();
    let bins = |dir: &Path| -> Vec<String> {
        debian::list_files(dir)
            .unwrap()
            .into_iter()
            .filter(|n| n.ends_with(".bin"))
            .collect()
    };
    assert_eq!(bins(&golden), BIN_FILES, "golden directory's .bin files");
    if bins(&ours) != BIN_FILES {
        failures.push(format!(
            "our .bin files are {:?}, expected {BIN_FILES:?}",
            bins(&ours)
        ));
    }
    for name in BIN_FILES {
        let (g, o) = (golden.join(name), ours.join(name));
        if !o.is_file() {
            continue;
        }
        if let Some(d) = first_difference(&read(&g), &read(&o)) {
            failures.push(format!(
                "{name} differs from kmod 34.2's: {d}\n  cmp {} {}",
                g.display(),
                o.display()
            ));
        } else {
            eprintln!("{name}: {} bytes, identical", read(&o).len());
        }
    }
    scratch.finish("bin_indexes_are_byte_identical_to_kmod_34_2", &failures);
}

/// Debian's kmod 30 depmod writes the same keys, values and priorities (in another
/// node layout).
#[test]
fn kmod_30_bin_indexes_hold_the_same_entries() {
    let scratch = Scratch::new("v30");
    let ours = moddir(&scratch.ours());
    let v30 = moddir(&scratch.kmod30());
    let mut failures = Vec::new();
    for name in BIN_FILES {
        let (o, v) = (ours.join(name), v30.join(name));
        if !v.is_file() {
            failures.push(format!("kmod 30 did not write {}", v.display()));
            continue;
        }
        let (eo, ev) = match (index_entries(&o), index_entries(&v)) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                failures.extend(a.err());
                failures.extend(b.err());
                continue;
            }
        };
        if eo.is_empty() {
            failures.push(format!("{name}: our index has no entries"));
        }
        let values = |e: &[Entry]| e.iter().map(|(_, v)| v.len()).sum::<usize>();
        eprintln!(
            "{name}: {} keys, {} values; kmod 30's file is {} ({} bytes vs our {})",
            eo.len(),
            values(&eo),
            if read(&o) == read(&v) {
                "byte-identical"
            } else {
                "laid out differently"
            },
            read(&v).len(),
            read(&o).len()
        );
        if eo == ev {
            continue;
        }
        let mut msg = format!(
            "{name}: entries differ from kmod 30's ({} keys ours, {} kmod 30)",
            eo.len(),
            ev.len()
        );
        match eo.iter().zip(&ev).position(|(a, b)| a != b) {
            Some(i) => msg.push_str(&format!(
                "; first difference at entry {i}: ours {} => {:?}, kmod 30 {} => {:?}",
                show_key(&eo[i].0),
                eo[i].1,
                show_key(&ev[i].0),
                ev[i].1
            )),
            None => msg.push_str("; one is a prefix of the other"),
        }
        msg.push_str(&format!(
            "\n  files: {} {}\n  made by: {} -C {} -b {} {KVER} and /usr/sbin/depmod -b {} -C {} {KVER}",
            o.display(),
            v.display(),
            oracle::our_binary().display(),
            scratch.empty.display(),
            scratch.path().join("ours").display(),
            scratch.path().join("v30").display(),
            scratch.empty.display()
        ));
        failures.push(msg);
    }
    scratch.finish("kmod_30_bin_indexes_hold_the_same_entries", &failures);
}

/// `modprobe --show-depends NAME` for every module (modules.dep.bin).
#[test]
fn modprobe_show_depends_agrees_for_every_module() {
    let start = Instant::now();
    let bin = modprobe();
    let scratch = Scratch::new("deps");
    let (golden_root, ours_root) = (scratch.golden(), scratch.ours());
    let names = module_names(&read_text(&golden().join("modules.dep")));
    assert!(
        names.len() >= 4000,
        "golden modules.dep lists {} modules",
        names.len()
    );
    let cmp = Compare {
        query: Kmod::show_depends(&bin, &scratch.empty),
        golden: &golden_root,
        ours: &ours_root,
    };
    let mut failures = Vec::new();
    let n = account(
        "modules (batched)",
        cmp.batched(&names, true),
        &mut failures,
    );
    let (tally, outcomes) = cmp.each(&every(&names, 8), true);
    // Sanity: the module's own insmod line is printed (post-softdeps may follow it).
    for (name, g) in every(&names, 8).iter().zip(&outcomes) {
        let own = g.stdout.lines().any(|l| {
            l.strip_prefix("insmod ")
                .is_some_and(|rest| module_name(rest.split(' ').next().unwrap_or("")) == *name)
        });
        if !own {
            failures.push(format!(
                "golden --show-depends {name} has no insmod line for {name}: {:?}",
                g.stdout
            ));
        }
    }
    account("modules (one by one, every 8th)", tally, &mut failures);
    account(
        "missing names",
        cmp.each(&missing_names(), false).0,
        &mut failures,
    );
    eprintln!(
        "modprobe --show-depends: {n} modules compared in {:.1?}",
        start.elapsed()
    );
    scratch.finish("modprobe_show_depends_agrees_for_every_module", &failures);
}

/// `modprobe -R ALIAS` for every alias of modules.alias (modules.alias.bin) and every
/// built-in alias (modules.builtin.alias.bin).
#[test]
fn modprobe_resolves_every_alias_the_same() {
    let start = Instant::now();
    let bin = modprobe();
    let scratch = Scratch::new("alias");
    let (golden_root, ours_root) = (scratch.golden(), scratch.ours());
    let keys = alias_keys(&read_text(&golden().join("modules.alias")));
    let wild = keys.iter().filter(|k| has_wildcard(k)).count();
    let (resolving, verbatim_wild) = alias_queries(&keys);
    assert!(
        resolving.len() >= 1000 && wild >= 1000,
        "too few aliases: {} queries, {wild} wildcard keys",
        resolving.len()
    );
    let builtin_keys: Vec<String> = index_entries(&golden().join("modules.builtin.alias.bin"))
        .unwrap()
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
        .collect();
    let builtin_queries = dedup(
        builtin_keys
            .iter()
            .enumerate()
            .map(|(i, k)| concretize(k, i)),
    );
    let cmp = Compare {
        query: Kmod::resolve_alias(&bin, &scratch.empty),
        golden: &golden_root,
        ours: &ours_root,
    };
    let mut failures = Vec::new();
    let n = account(
        &format!(
            "aliases made concrete or plain (batched; {} keys, {wild} with wildcards)",
            keys.len()
        ),
        cmp.batched(&resolving, true),
        &mut failures,
    );
    let n_wild = account(
        "wildcard aliases verbatim (batched)",
        cmp.batched(&verbatim_wild, false),
        &mut failures,
    );
    let n_builtin = account(
        "built-in aliases (batched)",
        cmp.batched(&builtin_queries, true),
        &mut failures,
    );
    let mut sample = every(&resolving, 50);
    sample.extend(every(&builtin_queries, 5));
    account(
        "aliases (one by one, a sample)",
        cmp.each(&sample, true).0,
        &mut failures,
    );
    account(
        "missing names",
        cmp.each(&missing_names(), false).0,
        &mut failures,
    );
    eprintln!(
        "modprobe -R: {} aliases compared ({n} concrete or plain, {n_wild} wildcard verbatim, \
         {n_builtin} built-in) in {:.1?}",
        n + n_wild + n_builtin,
        start.elapsed()
    );
    scratch.finish("modprobe_resolves_every_alias_the_same", &failures);
}

/// `modprobe --show-depends symbol:NAME` for every symbol (modules.symbols.bin), `-R`
/// for a sample, and `--show-depends` of every built-in module (modules.builtin.bin).
#[test]
fn modprobe_agrees_on_symbols_and_builtin_modules() {
    let start = Instant::now();
    let bin = modprobe();
    let scratch = Scratch::new("sym");
    let (golden_root, ours_root) = (scratch.golden(), scratch.ours());
    let symbols: Vec<String> = alias_keys(&read_text(&golden().join("modules.symbols")))
        .into_iter()
        .filter(|k| k.starts_with("symbol:"))
        .collect();
    assert!(
        symbols.len() >= 1000,
        "golden modules.symbols has {} symbols",
        symbols.len()
    );
    let builtins = module_names(&read_text(&moddir(&golden_root).join("modules.builtin")));
    assert!(
        builtins.len() >= 100,
        "modules.builtin lists {} modules",
        builtins.len()
    );
    let deps = Compare {
        query: Kmod::show_depends(&bin, &scratch.empty),
        golden: &golden_root,
        ours: &ours_root,
    };
    let resolve = Compare {
        query: Kmod::resolve_alias(&bin, &scratch.empty),
        golden: &golden_root,
        ours: &ours_root,
    };
    let mut failures = Vec::new();
    let n_sym = account(
        "symbols --show-depends (batched)",
        deps.batched(&symbols, true),
        &mut failures,
    );
    account(
        "symbols -R (batched, every 4th)",
        resolve.batched(&every(&symbols, 4), true),
        &mut failures,
    );
    account(
        "symbols --show-depends (one by one, every 40th)",
        deps.each(&every(&symbols, 40), true).0,
        &mut failures,
    );
    account(
        "built-in modules --show-depends (batched)",
        deps.batched(&builtins, true),
        &mut failures,
    );
    // A built-in module's name may also be an alias of loadable modules (`crc32`);
    // libkmod looks aliases up before built-ins, so only the others print "builtin".
    let alias_names: BTreeSet<String> = alias_keys(&read_text(&golden().join("modules.alias")))
        .into_iter()
        .collect();
    let (tally, outcomes) = deps.each(&builtins, true);
    let mut shown_builtin = 0;
    for (name, g) in builtins.iter().zip(&outcomes) {
        if g.stdout == format!("builtin {name}\n") {
            shown_builtin += 1;
        } else if !alias_names.contains(name) {
            failures.push(format!(
                "golden --show-depends {name} printed {:?}, not \"builtin {name}\"",
                g.stdout
            ));
        }
    }
    let n_builtin = account(
        "built-in modules --show-depends (one by one)",
        tally,
        &mut failures,
    );
    eprintln!(
        "built-in modules: {shown_builtin} print \"builtin NAME\", {} are also aliases \
         of loadable modules",
        n_builtin - shown_builtin
    );
    eprintln!(
        "modprobe symbol:/builtin: {n_sym} symbols and {n_builtin} built-in modules \
         compared in {:.1?}",
        start.elapsed()
    );
    scratch.finish("modprobe_agrees_on_symbols_and_builtin_modules", &failures);
}

/// busybox `modprobe -D` (text modules.dep/alias/symbols) in a chroot of each root,
/// for a sample of modules, aliases and symbols.
#[test]
fn busybox_modprobe_dry_run_agrees_on_a_sample() {
    let start = Instant::now();
    let busybox = busybox();
    let scratch = Scratch::new("busybox");
    let (golden_root, ours_root) = (scratch.golden(), scratch.ours());
    // busybox modprobe looks in /lib/modules/$(uname -r): link that to the tree.
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("/proc/sys/kernel/osrelease")
        .trim()
        .to_owned();
    for root in [&golden_root, &ours_root] {
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::copy(&busybox, root.join("bin/busybox")).unwrap();
        if release != KVER {
            std::os::unix::fs::symlink(KVER, root.join("lib/modules").join(&release)).unwrap();
        }
    }
    let cmp = Compare {
        query: Busybox::in_chroot(),
        golden: &golden_root,
        ours: &ours_root,
    };
    // The chroot must work at all (static busybox, privileges).
    let (program, args) = cmp.query.command(&golden_root, &["ext4".to_owned()]);
    let probe = cmp.query.run(&golden_root, &["ext4".to_owned()]);
    assert!(
        probe.clean_success() && probe.stdout.contains("/ext4.ko"),
        "cannot run busybox modprobe in a chroot ({}): {probe:?}\n\
         needs a static busybox (`apt-get install busybox-static`) and root \
         (or unprivileged user namespaces for `unshare -r`)",
        command_line(&program, &args)
    );
    let modules = module_names(&read_text(&golden().join("modules.dep")));
    let keys = alias_keys(&read_text(&golden().join("modules.alias")));
    let (aliases, _) = alias_queries(&keys);
    let symbols: Vec<String> = alias_keys(&read_text(&golden().join("modules.symbols")))
        .into_iter()
        .filter(|k| k.starts_with("symbol:"))
        .collect();
    let mut failures = Vec::new();
    let n_mod = account(
        "busybox modules (one by one, every 10th)",
        cmp.each(&every(&modules, 10), true).0,
        &mut failures,
    );
    let n_alias = account(
        "busybox aliases (one by one, every 250th)",
        cmp.each(&every(&aliases, 250), false).0,
        &mut failures,
    );
    let n_sym = account(
        "busybox symbols (one by one, every 250th)",
        cmp.each(&every(&symbols, 250), true).0,
        &mut failures,
    );
    account(
        "busybox modules (batched -a)",
        cmp.batched(&every(&modules, 3), true),
        &mut failures,
    );
    account(
        "busybox missing names",
        cmp.each(&missing_names(), false).0,
        &mut failures,
    );
    eprintln!(
        "busybox modprobe -D: {n_mod} modules, {n_alias} aliases, {n_sym} symbols one by one \
         in {:.1?}",
        start.elapsed()
    );
    scratch.finish("busybox_modprobe_dry_run_agrees_on_a_sample", &failures);
}
