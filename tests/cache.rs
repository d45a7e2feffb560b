//! The module cache (`DEPMOD_CACHE=DIR`): a cached run is byte-identical to a full
//! run, always, whatever changed in between.
//!
//! * Randomized sequences of changes to a tree of real Debian modules (plain, gz,
//!   xz, zst): add, remove, modify, touch, rename, same-size rewrite, rewrite with
//!   the old timestamps put back, symlink swap, depmod.d, modules.order,
//!   modules.builtin, `-E` and `-F` input changes. After each step, depmod with the
//!   cache and depmod without it (a fresh full run) must write the same 11 files,
//!   print the same and exit the same.
//! * The cache is used: an unchanged tree opens no module file; after one change,
//!   only that one (strace).
//! * A damaged cache: every truncation and every byte flip of a real cache file is
//!   refused by the parser; depmod over a sample of them prints one warning,
//!   writes the full run's outputs and leaves a good cache behind. An older
//!   format gets the same treatment.
//! * A few changes write a delta beside the full file, an unchanged tree writes
//!   nothing, many changes fold the delta into a new full file; every
//!   truncation and byte flip of a real delta is refused, and depmod over a
//!   damaged delta warns once and rebuilds it; a delta left beside another
//!   full file is not used.
//! * Two or more depmods at once never leave a damaged cache; `-n` writes none.
//! * Each cached run of the sequences writes over the last one's outputs: an
//!   output already in place is kept only while it holds exactly the bytes of
//!   a full run (a module rebuilt with nothing depmod sees changed keeps them
//!   all; bytes changed in place, links, permissions and a damaged note of the
//!   indexes make them written anew); without the cache all are written anew.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::debian::{self, KVER};
use common::rng::Rng;
use common::OUTPUTS;

/// Where the pool of real modules comes from (subtrees of the Debian tree).
const POOL_DIRS: &[&str] = &[
    "kernel/fs",
    "kernel/lib",
    "kernel/crypto",
    "kernel/drivers/md",
];

fn ours() -> PathBuf {
    std::env::var_os("DEPMOD_UNDER_TEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_depmod")))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Form {
    Plain,
    Gz,
    Xz,
    Zst,
}

impl Form {
    const ALL: [Form; 4] = [Form::Plain, Form::Gz, Form::Xz, Form::Zst];
    fn suffix(self) -> &'static str {
        match self {
            Form::Plain => ".ko",
            Form::Gz => ".ko.gz",
            Form::Xz => ".ko.xz",
            Form::Zst => ".ko.zst",
        }
    }
    /// The compressor and the options that write `bytes` to stdout.
    fn compress(self, bytes: &[u8], level: u32) -> Vec<u8> {
        let (tool, args): (&str, Vec<String>) = match self {
            Form::Plain => return bytes.to_vec(),
            Form::Gz => ("gzip", vec![format!("-{level}"), "-n".into(), "-c".into()]),
            Form::Xz => (
                "xz",
                vec![format!("-{level}"), "--check=crc32".into(), "-c".into()],
            ),
            Form::Zst => ("zstd", vec![format!("-{level}"), "-q".into(), "-c".into()]),
        };
        let mut child = Command::new(tool)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let input = bytes.to_vec();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            stdin.write_all(&input).unwrap();
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "{tool} failed");
        out.stdout
    }
}

/// Real modules to draw from: (path relative to the module directory without the
/// `.ko`, plain bytes).
struct Pool {
    modules: Vec<(String, Vec<u8>)>,
    compressed: BTreeMap<(usize, Form, u32), Vec<u8>>,
    system_map: Vec<u8>,
    symvers: Vec<u8>,
}

impl Pool {
    fn load() -> Pool {
        let moddir = debian::module_dir().unwrap_or_else(|e| panic!("Debian tree: {e}"));
        let mut modules = Vec::new();
        for d in POOL_DIRS {
            let mut stack = vec![moddir.join(d)];
            while let Some(dir) = stack.pop() {
                for e in fs::read_dir(&dir).unwrap().flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "ko") {
                        let rel = p.strip_prefix(&moddir).unwrap().to_string_lossy();
                        let stem = rel.trim_end_matches(".ko").to_string();
                        modules.push((stem, fs::read(&p).unwrap()));
                    }
                }
            }
        }
        modules.sort();
        let root = debian::image_root().unwrap();
        let system_map = fs::read(root.join(format!("boot/System.map-{KVER}"))).unwrap();
        let symvers = fs::read(debian::module_symvers().unwrap()).unwrap();
        Pool {
            modules,
            compressed: BTreeMap::new(),
            system_map,
            symvers,
        }
    }

    /// Module `i` in `form`, compressed at `level` (levels give other bytes).
    fn bytes(&mut self, i: usize, form: Form, level: u32) -> Vec<u8> {
        if form == Form::Plain {
            return self.modules[i].1.clone();
        }
        let plain = &self.modules[i].1;
        self.compressed
            .entry((i, form, level))
            .or_insert_with(|| form.compress(plain, level))
            .clone()
    }
}

/// A module tree under test, its depmod.d, its `-E`/`-F` inputs and its cache.
struct Bench {
    tmp: tempfile::TempDir,
    /// Module files present: path relative to the module dir → (pool index, form).
    present: BTreeMap<String, (usize, Form)>,
    /// Pass `-e -F System.map` / `-e -E Module.symvers`.
    with_map: bool,
    with_symvers: bool,
}

impl Bench {
    fn new() -> Bench {
        let tmp = tempfile::tempdir().unwrap();
        let b = Bench {
            tmp,
            present: BTreeMap::new(),
            with_map: false,
            with_symvers: false,
        };
        fs::create_dir_all(b.moddir()).unwrap();
        fs::create_dir_all(b.conf()).unwrap();
        b
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn moddir(&self) -> PathBuf {
        self.root().join("lib/modules").join(KVER)
    }
    fn conf(&self) -> PathBuf {
        self.tmp.path().join("depmod.d")
    }
    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }
    fn map(&self) -> PathBuf {
        self.tmp.path().join("System.map")
    }
    fn symvers(&self) -> PathBuf {
        self.tmp.path().join("Module.symvers")
    }
    fn outdir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// depmod over the tree, writing below `out`, with the cache or without.
    fn command(&self, out: &Path, cached: bool, extra: &[&str]) -> Command {
        let mut c = Command::new(ours());
        c.arg("-b")
            .arg(self.root())
            .arg("-C")
            .arg(self.conf())
            .arg("-o")
            .arg(out)
            .args(extra);
        if self.with_map {
            c.arg("-e").arg("-F").arg(self.map());
        }
        if self.with_symvers {
            c.arg("-e").arg("-E").arg(self.symvers());
        }
        c.arg(KVER).env("LC_ALL", "C").env_remove("DEPMOD_CACHE");
        if cached {
            c.env("DEPMOD_CACHE", self.cache());
        }
        c
    }

    fn run(&self, out: &Path, cached: bool) -> (Output, BTreeMap<String, Vec<u8>>) {
        let _ = fs::remove_dir_all(out);
        self.run_over(out, cached)
    }

    /// depmod writing over what `out` holds already.
    fn run_over(&self, out: &Path, cached: bool) -> (Output, BTreeMap<String, Vec<u8>>) {
        let o = self.command(out, cached, &[]).output().unwrap();
        (o, read_outputs(&self.index_dir(out)))
    }

    /// Where a run with `-o out` writes.
    fn index_dir(&self, out: &Path) -> PathBuf {
        out.join("lib/modules").join(KVER)
    }

    /// The cached run, over the outputs of the cached runs before it (as a
    /// system's indexes are run after run, so that outputs already in place
    /// are kept where they hold the right bytes), and a fresh full run into an
    /// empty directory agree on everything.
    fn check(&self, step: &str) {
        let (fresh, want) = self.run(&self.outdir("fresh"), false);
        let (cached, got) = self.run_over(&self.outdir("cached"), true);
        if !fresh.status.success() {
            // A failed run writes nothing; the cached one left the last
            // outputs alone. Start the next step from an empty directory.
            let _ = fs::remove_dir_all(self.outdir("cached"));
            assert_eq!(cached.status, fresh.status, "{step}: exit status");
            assert_eq!(
                String::from_utf8_lossy(&cached.stderr),
                String::from_utf8_lossy(&fresh.stderr),
                "{step}: stderr"
            );
            return;
        }
        assert_eq!(
            String::from_utf8_lossy(&cached.stderr),
            String::from_utf8_lossy(&fresh.stderr),
            "{step}: stderr"
        );
        assert_eq!(cached.stdout, fresh.stdout, "{step}: stdout");
        assert_eq!(cached.status, fresh.status, "{step}: exit status");
        assert_eq!(got.len(), want.len(), "{step}: outputs written");
        for (name, bytes) in &want {
            if got.get(name) != Some(bytes) {
                panic!(
                    "{step}: {name} differs from the full run's: {}",
                    debian::first_difference(bytes, got.get(name).map_or(&[], |v| v))
                        .unwrap_or_default()
                );
            }
        }
    }

    fn place(&mut self, pool: &mut Pool, rel_stem: &str, i: usize, form: Form) {
        let rel = format!("{rel_stem}{}", form.suffix());
        let p = self.moddir().join(&rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, pool.bytes(i, form, 6)).unwrap();
        self.present.insert(rel, (i, form));
    }

    fn write_order(&self, rng: &mut Rng) {
        let mut lines: Vec<String> = self
            .present
            .keys()
            .map(|r| {
                let stem = r.split(".ko").next().unwrap();
                format!("{stem}.ko")
            })
            .collect();
        // A shuffled order, sometimes with a line for a module that is not there.
        for i in (1..lines.len()).rev() {
            lines.swap(i, rng.below(i + 1));
        }
        if rng.below(3) == 0 {
            lines.push("kernel/gone/missing.ko".into());
        }
        fs::write(self.moddir().join("modules.order"), lines.join("\n") + "\n").unwrap();
    }
}

fn read_outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    OUTPUTS
        .iter()
        .filter_map(|n| fs::read(dir.join(n)).ok().map(|b| (n.to_string(), b)))
        .collect()
}

/// Sets a file's mtime (its ctime moves to now, as it does for every change).
fn set_mtime(path: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// One random change; returns what it did.
fn random_step(b: &mut Bench, pool: &mut Pool, rng: &mut Rng) -> String {
    let files: Vec<String> = b.present.keys().cloned().collect();
    let pick = |rng: &mut Rng| files[rng.below(files.len())].clone();
    match rng.below(13) {
        0 => {
            // add
            let i = rng.below(pool.modules.len());
            let form = Form::ALL[rng.below(4)];
            let stem = pool.modules[i].0.clone();
            b.place(pool, &stem, i, form);
            format!("add {stem}{}", form.suffix())
        }
        1 if files.len() > 5 => {
            let rel = pick(rng);
            fs::remove_file(b.moddir().join(&rel)).unwrap();
            b.present.remove(&rel);
            format!("remove {rel}")
        }
        2 => {
            // modify: another module's bytes (or the same module recompressed)
            let rel = pick(rng);
            let (_, form) = b.present[&rel];
            let i = rng.below(pool.modules.len());
            let level = 1 + rng.below(9) as u32;
            fs::write(b.moddir().join(&rel), pool.bytes(i, form, level)).unwrap();
            b.present.insert(rel.clone(), (i, form));
            format!("modify {rel} (now module {i} at level {level})")
        }
        3 => {
            let rel = pick(rng);
            set_mtime(&b.moddir().join(&rel), SystemTime::now());
            format!("touch {rel}")
        }
        4 => {
            // rename within the tree (another directory, same file name)
            let rel = pick(rng);
            let to = format!(
                "kernel/moved{}/{}",
                rng.below(3),
                rel.rsplit('/').next().unwrap()
            );
            if b.present.contains_key(&to) {
                return "rename skipped".into();
            }
            let dst = b.moddir().join(&to);
            fs::create_dir_all(dst.parent().unwrap()).unwrap();
            fs::rename(b.moddir().join(&rel), &dst).unwrap();
            let v = b.present.remove(&rel).unwrap();
            b.present.insert(to.clone(), v);
            format!("rename {rel} -> {to}")
        }
        5 | 6 => {
            // same-size rewrite of a plain module (one alias byte changed), with
            // the old mtime put back when asked (a rewrite within the same second)
            let plain: Vec<&String> = files.iter().filter(|f| f.ends_with(".ko")).collect();
            let Some(rel) = plain
                .get(rng.below(plain.len().max(1)))
                .map(|s| s.to_string())
            else {
                return "no plain module".into();
            };
            let p = b.moddir().join(&rel);
            let before = fs::metadata(&p).unwrap().modified().unwrap();
            let mut bytes = fs::read(&p).unwrap();
            let at = find(&bytes, b"\0license=").or_else(|| find(&bytes, b"\0author="));
            let Some(at) = at else {
                return format!("{rel}: nothing to rewrite");
            };
            // One byte of the value: same size, other content.
            let k = at + 10;
            bytes[k] = if bytes[k] == b'x' { b'y' } else { b'x' };
            fs::write(&p, &bytes).unwrap();
            if rng.below(2) == 0 {
                set_mtime(&p, before);
                format!("same-size rewrite of {rel}, mtime put back")
            } else {
                format!("same-size rewrite of {rel}")
            }
        }
        7 => {
            // symlink swap: a module that is a symlink to a file outside the tree
            let i = rng.below(pool.modules.len());
            let j = rng.below(pool.modules.len());
            let stem = format!("kernel/linked/link{}", rng.below(2));
            let rel = format!("{stem}.ko");
            let a = b.tmp.path().join(format!("outside-{i}.ko"));
            let c = b.tmp.path().join(format!("outside-{j}.ko"));
            fs::write(&a, pool.bytes(i, Form::Plain, 6)).unwrap();
            fs::write(&c, pool.bytes(j, Form::Plain, 6)).unwrap();
            let p = b.moddir().join(&rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            let target =
                if b.present.contains_key(&rel) && fs::read_link(&p).ok() == Some(a.clone()) {
                    &c
                } else {
                    &a
                };
            let _ = fs::remove_file(&p);
            symlink(target, &p).unwrap();
            b.present.insert(rel.clone(), (i, Form::Plain));
            format!("symlink {rel} -> {}", target.display())
        }
        8 => {
            let lines = [
                "",
                "search updates built-in\n",
                "search kernel/moved0 kernel/moved1 built-in\n",
                "override crc16 * kernel/lib\n",
                "exclude kernel/fs\n",
            ];
            let l = lines[rng.below(lines.len())];
            fs::write(b.conf().join("test.conf"), l).unwrap();
            format!("depmod.d: {l:?}")
        }
        9 => {
            b.write_order(rng);
            "modules.order rewritten".into()
        }
        10 => {
            let stems: Vec<String> = (0..3)
                .map(|_| format!("{}.ko", pool.modules[rng.below(pool.modules.len())].0))
                .collect();
            fs::write(b.moddir().join("modules.builtin"), stems.join("\n") + "\n").unwrap();
            format!("modules.builtin: {stems:?}")
        }
        11 => {
            b.with_map = !b.with_map;
            if b.with_map {
                // A System.map that lacks some symbols, or all of it.
                let keep = 1 + rng.below(4);
                let text = String::from_utf8_lossy(&pool.system_map).to_string();
                let lines: Vec<&str> = text
                    .lines()
                    .enumerate()
                    .filter(|(n, _)| n % keep == 0)
                    .map(|(_, l)| l)
                    .collect();
                fs::write(b.map(), lines.join("\n") + "\n").unwrap();
                format!("-F System.map (every {keep}th line)")
            } else {
                "no -F".into()
            }
        }
        _ => {
            b.with_symvers = !b.with_symvers;
            if b.with_symvers {
                // Module.symvers with some CRCs changed, so some imports mismatch.
                let text = String::from_utf8_lossy(&pool.symvers).to_string();
                let every = 2 + rng.below(20);
                let lines: Vec<String> = text
                    .lines()
                    .enumerate()
                    .map(|(n, l)| {
                        if n % every == 0 && l.starts_with("0x") {
                            format!("0x00000000{}", &l[10..])
                        } else {
                            l.to_string()
                        }
                    })
                    .collect();
                fs::write(b.symvers(), lines.join("\n") + "\n").unwrap();
                format!("-E Module.symvers (every {every}th CRC zeroed)")
            } else {
                "no -E".into()
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A tree of `n` random modules in random forms, with modules.order and
/// modules.builtin.
fn initial_tree(pool: &mut Pool, rng: &mut Rng, n: usize) -> Bench {
    let mut b = Bench::new();
    let mut chosen = std::collections::BTreeSet::new();
    while chosen.len() < n {
        let i = rng.below(pool.modules.len());
        if !chosen.insert(i) {
            continue;
        }
        let form = Form::ALL[rng.below(4)];
        let stem = pool.modules[i].0.clone();
        b.place(pool, &stem, i, form);
    }
    b.write_order(rng);
    fs::write(b.moddir().join("modules.builtin"), "kernel/lib/crc16.ko\n").unwrap();
    b
}

fn sequence(seed: u64, steps: usize) {
    let mut pool = Pool::load();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut b = initial_tree(&mut pool, &mut rng, 40);
    b.check(&format!("seed {seed}, initial tree"));
    let mut log = Vec::new();
    for step in 0..steps {
        // Sometimes several changes at once, sometimes none.
        for _ in 0..rng.below(3) {
            log.push(random_step(&mut b, &mut pool, &mut rng));
        }
        // Some steps run at once after the last (racily recent files), some after
        // the timestamp granularity has passed.
        if rng.below(4) == 0 {
            std::thread::sleep(Duration::from_millis(2100));
            log.push("(2.1 s later)".into());
        }
        b.check(&format!("seed {seed}, step {step}, after {:?}", log));
        log.clear();
    }
}

#[test]
fn random_change_sequences_match_full_runs() {
    let seeds: u64 = std::env::var("CACHE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let steps: usize = std::env::var("CACHE_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    for seed in 1..=seeds {
        sequence(seed, steps);
    }
}

/// The module files a cached run opens (strace), relative to the module dir.
fn opened_modules(b: &Bench, out: &Path) -> Vec<String> {
    let log = b.tmp.path().join("strace.log");
    let c = b.command(out, true, &[]);
    let mut s = Command::new("strace");
    s.args(["-f", "-qq", "-e", "trace=open,openat", "-o"])
        .arg(&log)
        .arg(c.get_program());
    s.args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    let o = s.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = fs::read_to_string(&log).unwrap();
    let prefix = format!("{}/", b.moddir().display());
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let start = l.find('"')? + 1;
            let end = start + l[start..].find('"')?;
            let p = &l[start..end];
            let rel = p.strip_prefix(&prefix)?;
            rel.contains(".ko").then(|| rel.to_string())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn an_unchanged_tree_opens_no_module_and_one_change_opens_one() {
    let mut pool = Pool::load();
    let mut rng = Rng(77);
    let mut b = initial_tree(&mut pool, &mut rng, 30);
    let out = b.outdir("out");
    // Files changed within the timestamp granularity before a run are verified
    // again by the next one (racily clean): let the new tree age past it.
    std::thread::sleep(Duration::from_millis(2100));
    let first = opened_modules(&b, &out);
    assert_eq!(
        first.len(),
        b.present.len(),
        "the first run reads every module"
    );
    let again = opened_modules(&b, &out);
    assert_eq!(again, Vec::<String>::new(), "unchanged: no module read");
    let rel = b.present.keys().nth(3).unwrap().clone();
    let (i, form) = b.present[&rel];
    let j = (i + 1) % pool.modules.len();
    fs::write(b.moddir().join(&rel), pool.bytes(j, form, 6)).unwrap();
    b.present.insert(rel.clone(), (j, form));
    // Right away: the changed module, and only it, is read.
    let third = opened_modules(&b, &out);
    assert_eq!(third, vec![rel.clone()]);
    b.check("after one change");
}

/// The files in the cache directory, by name.
fn cache_files(b: &Bench) -> BTreeMap<String, PathBuf> {
    fs::read_dir(b.cache())
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

/// The cache directory holds one full file and perhaps a delta, no temp file;
/// their paths.
fn full_and_delta(b: &Bench, when: &str) -> (PathBuf, Option<PathBuf>) {
    let files = cache_files(b);
    let full: Vec<&PathBuf> = files
        .iter()
        .filter(|(n, _)| n.ends_with(".cache"))
        .map(|(_, p)| p)
        .collect();
    let delta: Vec<&PathBuf> = files
        .iter()
        .filter(|(n, _)| n.ends_with(".delta"))
        .map(|(_, p)| p)
        .collect();
    let notes = files.keys().filter(|n| n.ends_with(".indexes")).count();
    assert!(
        full.len() == 1 && delta.len() <= 1 && notes <= 1,
        "{when}: one full file, at most one delta and one note: {files:?}"
    );
    assert_eq!(
        files.len(),
        full.len() + delta.len() + notes,
        "{when}: nothing else (no temp file): {files:?}"
    );
    (full[0].clone(), delta.first().map(|p| (*p).clone()))
}

fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).unwrap().ino()
}

/// A real cache file of a small tree, and the tree.
fn real_cache() -> (Bench, Vec<u8>, PathBuf) {
    let mut pool = Pool::load();
    let mut rng = Rng(5);
    let b = initial_tree(&mut pool, &mut rng, 25);
    let (o, _) = b.run(&b.outdir("cached"), true);
    assert!(o.status.success());
    let (full, delta) = full_and_delta(&b, "first run");
    assert_eq!(delta, None, "a first run writes a full file");
    let bytes = fs::read(&full).unwrap();
    (b, bytes, full)
}

/// A tree whose files are older than the timestamp granularity, with its full
/// cache file written: from here, a run after a few changes writes a delta.
fn aged_tree_with_cache(seed: u64, n: usize) -> (Pool, Bench) {
    let mut pool = Pool::load();
    let mut rng = Rng(seed);
    let b = initial_tree(&mut pool, &mut rng, n);
    // Files changed within the granularity before a run are verified again by
    // the next one (racily clean), which a delta cannot leave out.
    std::thread::sleep(Duration::from_millis(2100));
    let (o, _) = b.run(&b.outdir("cached"), true);
    assert!(o.status.success());
    (pool, b)
}

/// Rewrites the `k`th module of the tree with another module's bytes.
fn change_module(b: &mut Bench, pool: &mut Pool, k: usize) -> String {
    let rel = b.present.keys().nth(k).unwrap().clone();
    let (i, form) = b.present[&rel];
    let j = (i + 1) % pool.modules.len();
    fs::write(b.moddir().join(&rel), pool.bytes(j, form, 6)).unwrap();
    b.present.insert(rel.clone(), (j, form));
    rel
}

/// A real delta of a small tree (one module changed), the tree and the delta's
/// path.
fn real_delta() -> (Bench, Vec<u8>, PathBuf) {
    let (mut pool, mut b) = aged_tree_with_cache(6, 25);
    change_module(&mut b, &mut pool, 2);
    let (o, _) = b.run(&b.outdir("cached"), true);
    assert!(o.status.success());
    let (_, delta) = full_and_delta(&b, "after one change");
    let delta = delta.expect("one change writes a delta");
    (b, fs::read(&delta).unwrap(), delta)
}

/// Every truncation and byte flip of `bytes` (a good cache file) is refused.
fn refuses_every_truncation_and_byte_flip(bytes: &[u8]) {
    assert!(depmod::cache::Cache::parse(bytes).is_ok());
    for n in 0..bytes.len() {
        assert!(
            depmod::cache::Cache::parse(&bytes[..n]).is_err(),
            "truncated to {n} bytes"
        );
    }
    let mut damaged = bytes.to_vec();
    for i in 0..bytes.len() {
        damaged[i] ^= 0xff;
        assert!(
            depmod::cache::Cache::parse(&damaged).is_err(),
            "byte {i} flipped"
        );
        damaged[i] = bytes[i];
    }
}

#[test]
fn every_truncation_and_byte_flip_of_a_real_delta_is_refused() {
    let (_b, bytes, _) = real_delta();
    let delta = depmod::cache::Cache::parse(&bytes).unwrap();
    assert!(delta.extends().is_some(), "a delta names its full file");
    assert!(bytes.len() > 200, "a real delta: {} bytes", bytes.len());
    refuses_every_truncation_and_byte_flip(&bytes);
}

#[test]
fn every_truncation_and_byte_flip_of_a_real_cache_is_refused() {
    let (_b, bytes, _) = real_cache();
    assert!(depmod::cache::Cache::parse(&bytes).is_ok());
    assert!(bytes.len() > 1000, "a real cache: {} bytes", bytes.len());
    refuses_every_truncation_and_byte_flip(&bytes);
}

#[test]
fn few_changes_write_a_delta_an_unchanged_tree_nothing_many_a_full_file() {
    let (mut pool, mut b) = aged_tree_with_cache(8, 40);
    let (full, _) = full_and_delta(&b, "first run");
    let full_inode = inode(&full);
    change_module(&mut b, &mut pool, 5);
    b.check("one change");
    let (f, delta) = full_and_delta(&b, "one change");
    assert_eq!(
        (f.clone(), inode(&f)),
        (full.clone(), full_inode),
        "full file kept"
    );
    let delta = delta.expect("one change writes a delta");
    let d = fs::read(&delta).unwrap();
    let full_bytes = fs::read(&full).unwrap();
    let (fc, dc) = (
        depmod::cache::Cache::parse(&full_bytes).unwrap(),
        depmod::cache::Cache::parse(&d).unwrap(),
    );
    assert_eq!(
        dc.extends(),
        Some(fc.checksum()),
        "the delta names the full file"
    );
    assert_eq!(dc.len(), 1, "the delta holds the changed module only");
    assert!(
        d.len() * 10 < full_bytes.len(),
        "{} vs {}",
        d.len(),
        full_bytes.len()
    );
    // The changed file was racily recent: verified again once it has aged, then
    // trusted, and then nothing is written at all.
    std::thread::sleep(Duration::from_millis(2100));
    b.check("aged");
    b.check("unchanged");
    let (f, delta) = full_and_delta(&b, "unchanged");
    let delta = delta.expect("the delta stays");
    let delta_inode = inode(&delta);
    b.check("unchanged again");
    let (f2, delta2) = full_and_delta(&b, "unchanged again");
    assert_eq!(inode(&f2), inode(&f), "unchanged: full file not rewritten");
    assert_eq!(inode(&f2), full_inode);
    assert_eq!(
        delta2.map(|d| inode(&d)),
        Some(delta_inode),
        "unchanged: delta not rewritten"
    );
    // A sixth of the modules changed: one full file again, no delta.
    for k in 10..17 {
        change_module(&mut b, &mut pool, k);
    }
    b.check("many changes");
    let (f3, delta3) = full_and_delta(&b, "many changes");
    assert_ne!(inode(&f3), full_inode, "many changes: a new full file");
    assert_eq!(delta3, None, "the delta is folded in");
}

/// A delta beside a full file it was not made for (a concurrent run replaced the
/// full file) is left out, silently.
#[test]
fn a_delta_of_another_full_file_is_not_used() {
    let (mut pool, mut b) = aged_tree_with_cache(10, 40);
    change_module(&mut b, &mut pool, 3);
    b.check("one change");
    let (_, delta) = full_and_delta(&b, "one change");
    let delta = delta.unwrap();
    let old = fs::read(&delta).unwrap();
    for k in 20..27 {
        change_module(&mut b, &mut pool, k);
    }
    b.check("many changes");
    let (full, none) = full_and_delta(&b, "many changes");
    assert_eq!(none, None);
    fs::write(&delta, &old).unwrap();
    let full_sum = depmod::cache::Cache::parse(&fs::read(&full).unwrap())
        .unwrap()
        .checksum();
    let stale = depmod::cache::Cache::parse(&old).unwrap();
    assert_ne!(stale.extends(), Some(full_sum));
    // `check` compares stderr with the full run's: no warning.
    b.check("stale delta");
}

/// depmod over a damaged cache: one warning naming it, the full run's outputs, and
/// a good cache afterwards (the next run is silent).
#[test]
fn a_damaged_or_older_cache_gets_one_warning_and_is_rebuilt() {
    let (b, bytes, file) = real_cache();
    damaged_files_get_one_warning_and_are_rebuilt(&b, &bytes, &file);
}

#[test]
fn a_damaged_or_older_delta_gets_one_warning_and_is_rebuilt() {
    let (b, bytes, file) = real_delta();
    damaged_files_get_one_warning_and_are_rebuilt(&b, &bytes, &file);
}

/// depmod with `file` (a real cache file or delta, `bytes`) damaged in various
/// ways: the full run's outputs, one warning naming it, a good file of the same
/// kind afterwards, and a silent run after that.
fn damaged_files_get_one_warning_and_are_rebuilt(b: &Bench, bytes: &[u8], file: &Path) {
    let is_delta = file.to_string_lossy().ends_with(".delta");
    let mut rng = Rng(11);
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    for _ in 0..12 {
        let n = rng.below(bytes.len());
        variants.push((format!("truncated to {n}"), bytes[..n].to_vec()));
        let mut d = bytes.to_vec();
        let i = rng.below(bytes.len());
        d[i] ^= 1 << rng.below(8);
        variants.push((format!("bit flip at {i}"), d));
    }
    variants.push(("empty".into(), Vec::new()));
    variants.push(("not a cache".into(), b"hello\n".to_vec()));
    // An older format: the format field changed, the checksum made to match.
    let mut older = bytes[..bytes.len() - 8].to_vec();
    older[16] = older[16].wrapping_sub(1);
    let sum = depmod::digest::checksum(&older);
    older.extend_from_slice(&sum.to_le_bytes());
    assert_eq!(
        depmod::cache::Cache::parse(&older).err(),
        Some(depmod::cache::CacheError::OtherVersion)
    );
    variants.push(("older format".into(), older));

    let (fresh, want) = b.run(&b.outdir("fresh"), false);
    for (what, v) in variants {
        fs::write(file, &v).unwrap();
        let (o, got) = b.run(&b.outdir("cached"), true);
        assert_eq!(got, want, "{what}: outputs");
        assert_eq!(o.status, fresh.status, "{what}");
        let err = String::from_utf8_lossy(&o.stderr);
        let extra: Vec<&str> = err
            .lines()
            .filter(|l| !String::from_utf8_lossy(&fresh.stderr).contains(l))
            .collect();
        assert_eq!(extra.len(), 1, "{what}: one message, got {err:?}");
        assert!(
            extra[0].starts_with("depmod: WARNING: ignoring module cache ")
                && extra[0].contains(&*file.to_string_lossy()),
            "{what}: {:?}",
            extra[0]
        );
        let rebuilt = fs::read(file).unwrap();
        let parsed = depmod::cache::Cache::parse(&rebuilt);
        assert!(parsed.is_ok(), "{what}: rebuilt");
        assert_eq!(
            parsed.unwrap().extends().is_some(),
            is_delta,
            "{what}: rebuilt as the same kind of file"
        );
        let (o, _) = b.run(&b.outdir("cached"), true);
        assert_eq!(o.stderr, fresh.stderr, "{what}: the next run is silent");
    }
}

#[test]
fn concurrent_runs_never_leave_a_damaged_cache() {
    let mut pool = Pool::load();
    let mut rng = Rng(21);
    let mut b = initial_tree(&mut pool, &mut rng, 40);
    for round in 0..5 {
        // Change something between rounds, so the runs write different caches.
        random_step(&mut b, &mut pool, &mut rng);
        let children: Vec<_> = (0..6)
            .map(|k| {
                let out = b.outdir(&format!("par{k}"));
                let _ = fs::remove_dir_all(&out);
                b.command(&out, true, &[])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success());
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!err.contains("module cache"), "round {round}: {err}");
        }
        let (full, delta) = full_and_delta(&b, &format!("round {round}"));
        for f in [Some(full), delta].into_iter().flatten() {
            let bytes = fs::read(&f).unwrap();
            assert!(
                depmod::cache::Cache::parse(&bytes).is_ok(),
                "round {round}: {f:?}"
            );
        }
        b.check(&format!("after concurrent round {round}"));
    }
}

#[test]
fn dry_run_neither_writes_nor_needs_the_cache() {
    let mut pool = Pool::load();
    let mut rng = Rng(3);
    let b = initial_tree(&mut pool, &mut rng, 10);
    let o = b
        .command(&b.outdir("n"), true, &["-n"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(!b.cache().exists(), "-n created the cache");
}

/// A tree copied afresh to another place (a new build's root file system) is
/// recognised by content: its compressed modules are not decompressed again, and
/// the outputs are those of a full run.
#[test]
fn a_tree_copied_elsewhere_matches_by_content() {
    let mut pool = Pool::load();
    let mut rng = Rng(9);
    let b = initial_tree(&mut pool, &mut rng, 30);
    let (o, _) = b.run(&b.outdir("cached"), true);
    assert!(o.status.success());
    // A second tree: the same files, copied (new inodes, new times), elsewhere.
    let mut c = Bench::new();
    for (rel, v) in &b.present {
        let dst = c.moddir().join(rel);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(b.moddir().join(rel), &dst).unwrap();
        c.present.insert(rel.clone(), *v);
    }
    for f in ["modules.order", "modules.builtin"] {
        fs::copy(b.moddir().join(f), c.moddir().join(f)).unwrap();
    }
    // Sharing the first tree's cache directory.
    fs::rename(b.cache(), c.cache()).unwrap();
    let o = c
        .command(&c.outdir("stats"), true, &[])
        .env("DEPMOD_CACHE_STATS", "1")
        .output()
        .unwrap();
    assert!(o.status.success());
    let compressed = c.present.keys().filter(|r| !r.ends_with(".ko")).count();
    let plain = c.present.len() - compressed;
    assert!(
        compressed > 10 && plain > 3,
        "{compressed} compressed, {plain} plain"
    );
    let want = format!(
        "depmod: WARNING: module cache: 0 unchanged, {compressed} recognised by content, \
         {plain} read\n"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&want),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    c.check("copied tree");
    let caches = fs::read_dir(c.cache())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cache"))
        .count();
    assert_eq!(caches, 2, "one cache per tree");
}

fn output_inodes(dir: &Path) -> BTreeMap<String, u64> {
    OUTPUTS
        .iter()
        .map(|n| (n.to_string(), inode(&dir.join(n))))
        .collect()
}

/// The outputs whose inode changed between `before` and `after`.
fn rewritten(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<String> {
    after
        .iter()
        .filter(|(n, i)| before.get(*n) != Some(*i))
        .map(|(n, _)| n.clone())
        .collect()
}

/// Flips the last byte of `path` in place (same inode, same size).
fn flip_last_byte(path: &Path) {
    use std::os::unix::fs::FileExt;
    let f = fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let mut b = [0u8];
    f.read_exact_at(&mut b, len - 1).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], len - 1).unwrap();
}

/// With the cache, an output already in place is kept (same inode, times set)
/// when it holds exactly the bytes this run would write — after no change, and
/// after a module was rebuilt with other bytes but nothing depmod takes from it
/// changed — and written anew otherwise: bytes changed in place, a hard link, a
/// symbolic link, other permissions, a damaged note of the indexes. `check`
/// compares every step with a fresh full run.
#[test]
fn outputs_in_place_are_kept_only_while_they_hold_the_right_bytes() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (mut pool, mut b) = aged_tree_with_cache(12, 30);
    let out = b.outdir("cached");
    let dir = b.index_dir(&out);
    b.check("first");
    let all = output_inodes(&dir);
    let dep_mtime = fs::metadata(dir.join("modules.dep")).unwrap().modified();
    std::thread::sleep(Duration::from_millis(50));
    b.check("unchanged");
    assert_eq!(rewritten(&all, &output_inodes(&dir)), Vec::<String>::new());
    assert!(
        fs::metadata(dir.join("modules.dep"))
            .unwrap()
            .modified()
            .unwrap()
            > dep_mtime.unwrap(),
        "a kept output's times are set, as a new file's would be"
    );

    // A module rebuilt: other bytes, the same for depmod.
    let (rel, &(i, form)) = b.present.iter().next().unwrap();
    let rel = rel.clone();
    let bytes = match form {
        Form::Plain => {
            let mut v = pool.bytes(i, form, 6);
            v.push(0);
            v
        }
        _ => pool.bytes(i, form, 9),
    };
    assert_ne!(bytes, fs::read(b.moddir().join(&rel)).unwrap());
    fs::write(b.moddir().join(&rel), bytes).unwrap();
    b.check("one module rebuilt");
    assert_eq!(rewritten(&all, &output_inodes(&dir)), Vec::<String>::new());

    // A module whose aliases and exports differ: the outputs that show them
    // are written.
    change_module(&mut b, &mut pool, 3);
    b.check("one module changed");
    let changed = output_inodes(&dir);
    let again = rewritten(&all, &changed);
    assert!(
        again.contains(&"modules.alias.bin".to_string()),
        "{again:?}"
    );
    assert!(again.len() < OUTPUTS.len(), "{again:?}");

    // Bytes changed in place, same size and inode: written anew.
    for name in ["modules.alias.bin", "modules.dep", "modules.symbols.bin"] {
        flip_last_byte(&dir.join(name));
    }
    b.check("outputs changed in place");
    let after = output_inodes(&dir);
    assert_eq!(
        rewritten(&changed, &after),
        ["modules.alias.bin", "modules.dep", "modules.symbols.bin"]
    );

    // A hard link, a symbolic link, other permissions: written anew, and the
    // other name and the link's target are left as they were.
    let other = b.tmp.path().join("other-name");
    fs::hard_link(dir.join("modules.symbols"), &other).unwrap();
    let target = b.tmp.path().join("softdep-target");
    fs::rename(dir.join("modules.softdep"), &target).unwrap();
    symlink(&target, dir.join("modules.softdep")).unwrap();
    let target_bytes = fs::read(&target).unwrap();
    let mode = fs::metadata(dir.join("modules.dep")).unwrap().mode() & 0o7777;
    fs::set_permissions(dir.join("modules.alias"), fs::Permissions::from_mode(0o600)).unwrap();
    b.check("links and modes");
    let after2 = output_inodes(&dir);
    assert_eq!(
        rewritten(&after, &after2),
        ["modules.alias", "modules.softdep", "modules.symbols"]
    );
    assert!(fs::symlink_metadata(dir.join("modules.softdep"))
        .unwrap()
        .is_file());
    assert_eq!(fs::read(&target).unwrap(), target_bytes);
    assert_eq!(fs::metadata(&other).unwrap().nlink(), 1);
    assert_eq!(
        fs::metadata(dir.join("modules.alias")).unwrap().mode() & 0o7777,
        mode
    );

    // A damaged note: not used, silently (`check` compares stderr); the
    // indexes are made and written again, and noted.
    let note = cache_files(&b)
        .into_iter()
        .find(|(n, _)| n.ends_with(".indexes"))
        .map(|(_, p)| p)
        .expect("a note of the indexes");
    let good = fs::read(&note).unwrap();
    assert!(depmod::made_indexes::MadeIndexes::parse(&good).is_ok());
    flip_last_byte(&note);
    b.check("damaged note");
    let after3 = output_inodes(&dir);
    // Every index made from insertions (an index whose input file is missing is
    // an empty file, compared as it is).
    let again = rewritten(&after2, &after3);
    for name in [
        "modules.dep.bin",
        "modules.alias.bin",
        "modules.symbols.bin",
    ] {
        assert!(again.contains(&name.to_string()), "{again:?}");
    }
    assert!(again.iter().all(|n| n.ends_with(".bin")), "{again:?}");
    assert!(depmod::made_indexes::MadeIndexes::parse(&fs::read(&note).unwrap()).is_ok());
    b.check("note rebuilt");
    assert_eq!(
        rewritten(&after3, &output_inodes(&dir)),
        Vec::<String>::new()
    );
}

/// Without the cache, every output is written anew each run, as kmod writes it.
#[test]
fn without_the_cache_every_output_is_written_anew() {
    let mut pool = Pool::load();
    let mut rng = Rng(13);
    let b = initial_tree(&mut pool, &mut rng, 10);
    let out = b.outdir("plain");
    let dir = b.index_dir(&out);
    let (o, _) = b.run(&out, false);
    assert!(o.status.success());
    let before = output_inodes(&dir);
    let (o, _) = b.run_over(&out, false);
    assert!(o.status.success());
    assert_eq!(
        rewritten(&before, &output_inodes(&dir)).len(),
        OUTPUTS.len()
    );
}

/// A kept output's times are set as a new file's would be, so `-A` (kmod's
/// "modules.dep newer than every module?") after a cached run that kept
/// everything finds the indexes up to date and writes nothing, as after a run
/// that wrote them.
#[test]
fn quick_check_after_kept_outputs_finds_them_up_to_date() {
    let mut pool = Pool::load();
    let mut rng = Rng(15);
    let b = initial_tree(&mut pool, &mut rng, 8);
    // `-A` looks at the module directory's own modules.dep: no `-o` here.
    let run = |extra: &[&str], cached: bool| {
        let mut c = Command::new(ours());
        c.arg("-b")
            .arg(b.root())
            .arg("-C")
            .arg(b.conf())
            .args(extra)
            .arg(KVER)
            .env("LC_ALL", "C")
            .env_remove("DEPMOD_CACHE");
        if cached {
            c.env("DEPMOD_CACHE", b.cache());
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&[], true);
    // `-A` compares whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    let (rel, &(i, form)) = b.present.iter().next().unwrap();
    let bytes = match form {
        Form::Plain => {
            let mut v = pool.bytes(i, form, 6);
            v.push(0);
            v
        }
        _ => pool.bytes(i, form, 9),
    };
    fs::write(b.moddir().join(rel), bytes).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let before = output_inodes(&b.moddir());
    run(&[], true);
    let kept = output_inodes(&b.moddir());
    assert_eq!(rewritten(&before, &kept), Vec::<String>::new(), "all kept");
    run(&["-A"], false);
    assert_eq!(
        rewritten(&kept, &output_inodes(&b.moddir())),
        Vec::<String>::new(),
        "-A found the kept indexes up to date"
    );
}
