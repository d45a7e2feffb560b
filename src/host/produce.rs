//! Making the outputs and putting them in place (compat §7): every output is made
//! on one of all cores and written to its temp file by the thread that made it,
//! then all are renamed into place at once (`write`).
//!
//! With the module cache, an output whose bytes are already in place is left
//! there instead (only its times are set, as a new file's would be): a text file
//! when the file in place holds exactly the bytes just made; an index when the
//! cache's note (`crate::made_indexes`) says what its insertions come out as and
//! the file in place holds exactly that. A module rebuilt with nothing depmod
//! sees changed so costs no index laid out and no file written. Whatever this
//! shortcut decides, a reader finds the bytes a full run would have written.

use alloc::vec::Vec;

use super::report::{io_error, DiagContext, Level, Report};
use super::sys::{self, Errno};
use super::write;
use super::{read_input_quiet, report_missing_input};
use crate::builtin;
use crate::diag::Diag;
use crate::digest::Fingerprint;
use crate::index::Trie;
use crate::made_indexes::{MadeIndex, MadeIndexes};
use crate::output::{OutputFile, Outputs};

/// One output, made: a text file's bytes, or an index's insertions, not yet
/// laid out (made here, or before: [`Destination::alias_index`]).
enum Made<'p> {
    Bytes(Vec<u8>),
    Index(Trie),
    Premade(&'p Trie),
}

/// What to say about one output, in kmod's order.
struct Said {
    missing_input: Option<(&'static str, Errno)>,
    diags: Vec<Diag>,
}

/// Where one output stands once its thread is done with it.
enum Placed {
    /// Written to this temp file, to be synced and renamed over the output
    /// (taken by the staging once every output is made).
    Written(Option<write::Temp>),
    /// The file in place holds its bytes already.
    Kept,
}

/// One output's lot: what to say, where it stands (or why it could not be
/// written), and for an index with the cache, its entry for the next note.
struct Done {
    said: Said,
    placed: Result<Placed, write::WriteError>,
    noted: Option<MadeIndex<'static>>,
}

fn make<'p>(
    file: OutputFile,
    outputs: &Outputs<'_, '_>,
    dir: &[u8],
    alias_index: Option<&'p (Trie, Vec<Diag>)>,
) -> (Said, Made<'p>) {
    let mut said = Said {
        missing_input: None,
        diags: Vec::new(),
    };
    if let (OutputFile::AliasBin, Some((trie, diags))) = (file, alias_index) {
        said.diags = diags.clone();
        return (said, Made::Premade(trie));
    }
    let input = match file {
        OutputFile::BuiltinBin => Some("modules.builtin"),
        OutputFile::BuiltinAliasBin => Some("modules.builtin.modinfo"),
        _ => None,
    };
    let made = match input {
        Some(name) => match read_input_quiet(dir, name) {
            Ok(data) => Made::Index(if file == OutputFile::BuiltinBin {
                builtin::builtin_index(&data, &mut said.diags)
            } else {
                builtin::builtin_alias_index(&data, &mut said.diags)
            }),
            Err(e) => {
                // kmod leaves the file empty (0 bytes) when its input is missing.
                said.missing_input = Some((name, e));
                Made::Bytes(Vec::new())
            }
        },
        None => match outputs.index(file, &mut said.diags) {
            Some(trie) => Made::Index(trie),
            None => {
                let mut bytes = Vec::new();
                outputs.generate(file, &mut bytes, &mut said.diags);
                Made::Bytes(bytes)
            }
        },
    };
    (said, made)
}

/// Puts one made output in place: keeps the file there if it holds the bytes
/// (only with the cache's `note`), otherwise writes a temp file.
fn place(
    file: OutputFile,
    made: Made<'_>,
    staging: &write::Staging,
    note: Option<&MadeIndexes<'_>>,
) -> (
    Result<Placed, write::WriteError>,
    Option<MadeIndex<'static>>,
) {
    let name = file.name();
    match made {
        Made::Bytes(bytes) => {
            let in_place = note.is_some() && {
                let mut rest = bytes.as_slice();
                staging.holds(name, bytes.len() as u64, |piece| {
                    match (rest.get(..piece.len()), rest.get(piece.len()..)) {
                        (Some(head), Some(tail)) if head == piece => {
                            rest = tail;
                            true
                        }
                        _ => false,
                    }
                })
            };
            match in_place {
                true => (Ok(Placed::Kept), None),
                false => (write_new(staging, name, &bytes), None),
            }
        }
        Made::Index(trie) => place_index(name, &trie, staging, note),
        Made::Premade(trie) => place_index(name, trie, staging, note),
    }
}

/// [`place`] of an index: kept in place when the note says the file there is
/// what these insertions make, otherwise laid out and written.
fn place_index(
    name: &'static str,
    trie: &Trie,
    staging: &write::Staging,
    note: Option<&MadeIndexes<'_>>,
) -> (
    Result<Placed, write::WriteError>,
    Option<MadeIndex<'static>>,
) {
    let mut bytes = Vec::new();
    let Some(note) = note else {
        trie.write(&mut bytes);
        return (write_new(staging, name, &bytes), None);
    };
    let made_from = trie.fingerprint();
    if let Some(known) = note.find(name.as_bytes(), &made_from) {
        let mut content = Fingerprint::default();
        let in_place = staging.holds(name, known.size, |piece| {
            content.update(piece);
            true
        }) && content.finish() == known.content;
        if in_place {
            let noted = MadeIndex {
                name: name.as_bytes(),
                ..*known
            };
            return (Ok(Placed::Kept), Some(noted));
        }
    }
    trie.write(&mut bytes);
    let noted = MadeIndex {
        name: name.as_bytes(),
        made_from,
        size: bytes.len() as u64,
        content: Fingerprint::of(&bytes),
    };
    (write_new(staging, name, &bytes), Some(noted))
}

/// Writes output `name` anew (its temp file, for the staging to take).
fn write_new(
    staging: &write::Staging,
    name: &'static str,
    bytes: &[u8],
) -> Result<Placed, write::WriteError> {
    staging
        .write_temp(name, bytes)
        .map(|tmp| Placed::Written(Some(tmp)))
}

/// Makes every output, on all cores, each put in place by the thread that made
/// it (so that writing and syncing overlap with making the others); their lots
/// in [`OutputFile::ALL`] order. Saying what there is to say is left to the
/// caller, in that order.
fn produce_all(
    outputs: &Outputs<'_, '_>,
    dir: &[u8],
    staging: &write::Staging,
    to: &Destination<'_>,
) -> Vec<Done> {
    let note = to.note;
    use core::sync::atomic::{AtomicUsize, Ordering};
    let files = OutputFile::ALL;
    // One output made and put in place; its bytes are freed once they are.
    let make = |file: OutputFile| {
        let (said, made) = make(file, outputs, dir, to.alias_index);
        let (placed, noted) = place(file, made, staging, note);
        Done {
            said,
            placed,
            noted,
        }
    };
    let next = AtomicUsize::new(0);
    let workers = sys::parallelism().min(files.len());
    let done = sys::run_workers(workers, &|| {
        let mut mine = Vec::new();
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&file) = LONGEST_FIRST.get(k) else {
                return mine;
            };
            let i = files.iter().position(|&f| f == file).unwrap_or(k);
            mine.push((i, make(file)));
        }
    });
    let mut slots: Vec<Option<_>> = (0..files.len()).map(|_| None).collect();
    for (i, p) in done.into_iter().flatten() {
        // `slots` has one slot per file, and `i` indexed `files`.
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(p);
        }
    }
    slots
        .into_iter()
        .zip(files)
        .map(|(p, file)| {
            // Every job was done (see `sys::run_workers`), so this is never
            // needed; if it were, the file would be made here.
            p.unwrap_or_else(|| make(file))
        })
        .collect()
}

/// The outputs in the order [`produce_all`] takes them: longest to make first
/// (as measured on the Debian tree), so that the workers finish together.
const LONGEST_FIRST: [OutputFile; OutputFile::ALL.len()] = [
    OutputFile::AliasBin,
    OutputFile::SymbolsBin,
    OutputFile::DepBin,
    OutputFile::Symbols,
    OutputFile::Alias,
    OutputFile::Dep,
    OutputFile::Devname,
    OutputFile::BuiltinAliasBin,
    OutputFile::BuiltinBin,
    OutputFile::Softdep,
    OutputFile::Weakdep,
];

/// Where the outputs go and how.
pub(super) struct Destination<'a> {
    /// The output directory.
    pub outdir: &'a [u8],
    /// `-n`: the text outputs to stdout, no index.
    pub dry_run: bool,
    /// The process's umask, read before any thread started.
    pub umask: u32,
    /// With the module cache: its note of the indexes made last time (possibly
    /// empty). `None` without the cache: every output is written anew.
    pub note: Option<&'a MadeIndexes<'a>>,
    /// `modules.alias.bin`'s insertions and what making them had to say, if
    /// they were made already (`output::alias_index`, while resolving).
    pub alias_index: Option<&'a (Trie, Vec<Diag>)>,
}

/// Makes and writes every output; the exit status, and (with the cache, on
/// success) what the next note of made indexes should hold.
pub(super) fn write_outputs(
    outputs: &Outputs<'_, '_>,
    dir: &[u8],
    to: &Destination<'_>,
    report: &Report,
    ctx: &DiagContext<'_>,
) -> (u8, Vec<MadeIndex<'static>>) {
    let mut diags = Vec::new();
    if to.dry_run {
        for file in OutputFile::ALL {
            if file.is_index() {
                continue;
            }
            let mut buf = Vec::new();
            outputs.generate(file, &mut buf, &mut diags);
            for d in diags.drain(..) {
                report.diag(&d, ctx);
            }
            if let Err(e) = sys::write_stdout(&buf) {
                report.error(format_args!("could not write to stdout: {}", io_error(e)));
                return (1, Vec::new());
            }
        }
        return (0, Vec::new());
    }
    let outdir = to.outdir;
    // kmod's FATAL when the output directory cannot be made or opened.
    let fatal = |what: &[u8], e: Errno| {
        report.log_bytes(Level::Fatal, &[what, outdir, b": ", io_error(e).as_bytes()]);
        (1, Vec::new())
    };
    if let Err(e) = write::Staging::create_dir(outdir) {
        return fatal(b"could not create directory ", e);
    }
    let mut staging = match write::Staging::open(outdir, to.umask) {
        Ok(s) => s,
        Err(e) => return fatal(b"could not open directory ", e),
    };
    let mut done = produce_all(outputs, dir, &staging, to);
    // Every temp file written is the staging's from now on, so that whatever
    // happens next, none is left behind; kept files are taken in the same order.
    for (file, d) in OutputFile::ALL.into_iter().zip(&mut done) {
        match &mut d.placed {
            Ok(Placed::Written(tmp)) => {
                if let Some(tmp) = tmp.take() {
                    staging.adopt(tmp, file.name());
                }
            }
            Ok(Placed::Kept) => staging.keep(file.name()),
            Err(_) => {}
        }
    }
    // A temp file that could not be written or synced: nothing is renamed.
    let write_failed = |e: &write::WriteError| {
        report.log_bytes(
            Level::Error,
            &[
                b"could not write ",
                &e.path,
                b": ",
                io_error(e.error).as_bytes(),
                b" (no index was changed)",
            ],
        );
        (1, Vec::new())
    };
    for d in &done {
        if let Some((name, e)) = &d.said.missing_input {
            report_missing_input(dir, name, *e, report);
        }
        for diag in &d.said.diags {
            report.diag(diag, ctx);
        }
        if let Err(e) = &d.placed {
            return write_failed(e);
        }
    }
    if let Err(e) = staging.sync() {
        return write_failed(&e);
    }
    if let Err(e) = staging.commit() {
        report.log_bytes(
            Level::Error,
            &[
                b"could not rename into ",
                &e.path,
                b": ",
                io_error(e.error).as_bytes(),
            ],
        );
        return (1, Vec::new());
    }
    (0, done.into_iter().filter_map(|d| d.noted).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_output_is_taken_once() {
        let mut taken = LONGEST_FIRST.to_vec();
        let mut all = OutputFile::ALL.to_vec();
        taken.sort_by_key(|f| f.name());
        all.sort_by_key(|f| f.name());
        assert!(taken == all);
    }
}
