//! The manual pages `man/depmod.8` and `man/depmod.d.5` (installed by
//! `cargo xtask install`).
//!
//! * Both render with `groff -man -ww -z` (all warnings on, output discarded), for
//!   the default device and for `utf8` (what `man` uses on a terminal), without a
//!   line on stderr. `groff` is Debian's `groff-base`; a missing one fails the test.
//! * Every option our `depmod -h` prints, short and long, with its argument name, is
//!   an item of depmod.8's OPTIONS; every option named by an item there is one our
//!   depmod accepts.
//! * depmod.8 has an item for each of the eleven files we write
//!   ([`depmod::output::OutputFile::ALL`]), lists the depmod.d directories of
//!   `src/host/walk.rs` in their order, and has an item in ENVIRONMENT for each
//!   variable `src/` reads.
//! * depmod.d.5 has an item for every keyword the parser of `src/config.rs`
//!   matches, and the directives it documents are what the parser does: the four
//!   real ones accepted, `include` and `make_map_files` "not implemented yet", an
//!   unknown word a bad line.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use depmod::config::Config;
use depmod::diag::Diag;
use depmod::output::OutputFile;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn page_path(name: &str) -> PathBuf {
    repo().join("man").join(name)
}

fn page(name: &str) -> String {
    let p = page_path(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn source(rel: &str) -> String {
    let p = repo().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The roff escapes the pages use, as plain text: `\-` is `-`, font changes and
/// the zero-width `\&` vanish, `\e` is a backslash.
fn plain(roff: &str) -> String {
    let mut s = roff.to_string();
    for (from, to) in [
        ("\\-", "-"),
        ("\\(hy", "-"),
        ("\\(aq", "'"),
        ("\\(dq", "\""),
        ("\\fB", ""),
        ("\\fI", ""),
        ("\\fR", ""),
        ("\\fP", ""),
        ("\\&", ""),
        ("\\%", ""),
        ("\\e", "\\"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// The lines of section `name` (from its `.SH` to the next `.SH`), in plain text.
fn section(page: &str, name: &str) -> Vec<String> {
    let text = plain(page);
    let mut lines = text.lines();
    let heading = format!(".SH {name}");
    let heading_quoted = format!(".SH \"{name}\"");
    assert!(
        lines
            .by_ref()
            .any(|l| l.trim_end() == heading || l.trim_end() == heading_quoted),
        "no section {name}"
    );
    lines
        .take_while(|l| !l.starts_with(".SH"))
        .map(str::to_string)
        .collect()
}

/// The item tags of a section: the line after each `.TP`, with its depth of
/// `.RS` nesting (0 = an item of the section itself).
fn tags(lines: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut next_is_tag = false;
    for l in lines {
        if next_is_tag && !l.starts_with(".PD") {
            out.push((depth, l.clone()));
            next_is_tag = false;
            continue;
        }
        match l.split_whitespace().next() {
            Some(".TP") => next_is_tag = true,
            Some(".RS") => depth += 1,
            Some(".RE") => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    out
}

/// The words of a tag line without its macro and roff quotes:
/// `.BR -C ", " --config=PATH` gives `-C`, `--config=PATH`.
fn tag_words(tag: &str) -> Vec<String> {
    tag.split(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .filter(|w| !w.is_empty() && !w.starts_with('.'))
        .map(str::to_string)
        .collect()
}

fn help_text() -> String {
    let bin = common::oracle::our_binary();
    let out = Command::new(&bin)
        .arg("-h")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(out.status.success(), "depmod -h: {}", out.status);
    String::from_utf8(out.stdout).expect("depmod -h prints UTF-8")
}

/// The options `depmod -h` lists: (short, long, argument name if it shows one).
fn help_options() -> Vec<(String, String, Option<String>)> {
    let mut opts = Vec::new();
    for line in help_text().lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        let mut words = line.split_whitespace();
        let short = words.next().unwrap_or_default().trim_end_matches(',');
        let long = words.next().unwrap_or_default();
        assert!(
            short.len() == 2 && long.starts_with("--"),
            "unexpected option line in depmod -h: {line:?}"
        );
        let (name, arg) = match long.split_once('=') {
            Some((n, a)) => (n, Some(a.to_string())),
            None => (long, None),
        };
        opts.push((short.to_string(), name.to_string(), arg));
    }
    opts
}

#[test]
fn pages_render_without_groff_warnings() {
    for name in ["depmod.8", "depmod.d.5"] {
        for device in [None, Some("utf8")] {
            let mut cmd = Command::new("groff");
            cmd.args(["-man", "-ww", "-z"]);
            if let Some(d) = device {
                cmd.arg(format!("-T{d}"));
            }
            let out = cmd.arg(page_path(name)).output().unwrap_or_else(|e| {
                panic!("cannot run groff ({e}): install Debian's groff-base package")
            });
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && stderr.is_empty(),
                "groff -man -ww -z {} {name}: {}\n{stderr}",
                device.map(|d| format!("-T{d}")).unwrap_or_default(),
                out.status
            );
        }
    }
}

#[test]
fn every_option_of_help_is_an_item_of_options() {
    let opts = help_options();
    // kmod 34.2's help lists 15 options; fewer means the parsing above broke.
    assert!(opts.len() >= 15, "only {} options in depmod -h", opts.len());
    let page = page("depmod.8");
    let items = tags(&section(&page, "OPTIONS"));
    let words: BTreeSet<String> = items
        .iter()
        .filter(|(depth, _)| *depth == 0)
        .flat_map(|(_, t)| tag_words(t))
        .collect();
    for (short, long, arg) in &opts {
        assert!(
            words.contains(short),
            "depmod.8 OPTIONS has no item {short}"
        );
        // With the argument name `-h` shows; `-h` shows none for `--symbol-prefix`,
        // which takes one all the same.
        let found = match arg {
            Some(a) => words.contains(&format!("{long}={a}")),
            None => words
                .iter()
                .any(|w| w == long || w.starts_with(&format!("{long}="))),
        };
        assert!(
            found,
            "depmod.8 OPTIONS has no item {long}{} (as depmod -h shows it)",
            arg.as_ref().map(|a| format!("={a}")).unwrap_or_default()
        );
    }
}

#[test]
fn every_option_of_the_page_is_accepted() {
    let opts = help_options();
    let help = help_text();
    let page = page("depmod.8");
    let known: BTreeSet<String> = opts
        .iter()
        .flat_map(|(s, l, _)| [s.clone(), l.clone()])
        .collect();
    let mut checked = 0;
    for (_, tag) in tags(&section(&page, "OPTIONS")) {
        for word in tag_words(&tag).into_iter().filter(|w| w.starts_with('-')) {
            let name = word.split('=').next().unwrap_or_default().to_string();
            if known.contains(&name) {
                continue;
            }
            // Not in `-h` (kmod's help leaves out `--dry-run`, for one): our depmod
            // must still take it. Given before `-h`, getopt reads it and `-h` then
            // prints the help; an unknown one would be an error, exit status 1.
            // (An option with a value is given as `--name=VALUE`, as the page shows it.)
            let args = [word.clone(), "-h".to_string()];
            let out = Command::new(common::oracle::our_binary())
                .args(&args)
                .output()
                .expect("run depmod");
            assert!(
                out.status.success() && out.stdout == help.as_bytes(),
                "depmod.8 documents {word}, which depmod {args:?} does not accept: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 1,
        "--dry-run, documented but not in -h, was not checked"
    );
}

#[test]
fn every_output_file_is_an_item_of_files_written() {
    let page = page("depmod.8");
    let items: BTreeSet<String> = tags(&section(&page, "FILES WRITTEN"))
        .into_iter()
        .flat_map(|(_, t)| tag_words(&t))
        .collect();
    for file in OutputFile::ALL {
        assert!(
            items.contains(file.name()),
            "depmod.8 FILES WRITTEN has no item {}",
            file.name()
        );
    }
}

/// The byte strings in `b"..."` literals of a source text.
fn byte_literals(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("b\"") {
        let after = &rest[at + 2..];
        let Some(end) = after.find('"') else { break };
        let lit = after[..end].to_string();
        let tail = after[end + 1..].trim_start();
        let next: String = tail.chars().take(2).collect();
        out.push((lit, next));
        rest = &after[end + 1..];
    }
    out
}

#[test]
fn config_paths_are_listed_in_their_order() {
    let walk = source("src/host/walk.rs");
    let start = walk.find("CONFIG_PATHS").expect("CONFIG_PATHS in walk.rs");
    let end = start + walk[start..].find("];").expect("end of CONFIG_PATHS");
    let paths: Vec<String> = byte_literals(&walk[start..end])
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(paths.len() >= 5, "CONFIG_PATHS: {paths:?}");
    for name in ["depmod.8", "depmod.d.5"] {
        let text = plain(&page(name));
        let mut from = 0;
        for p in &paths {
            let needle = format!("{p}/*.conf");
            let at = text[from..]
                .find(&needle)
                .unwrap_or_else(|| panic!("{name} lacks {needle}, or not in walk.rs's order"));
            from += at + needle.len();
        }
    }
}

#[test]
fn every_environment_variable_read_is_an_item_of_environment() {
    let mut vars = BTreeSet::new();
    let mut stack = vec![repo().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).expect("read source");
                for piece in text.split("env_var(c\"").skip(1) {
                    if let Some(end) = piece.find('"') {
                        vars.insert(piece[..end].to_string());
                    }
                }
            }
        }
    }
    assert!(vars.contains("PWD"), "src/ reads {vars:?}");
    let page = page("depmod.8");
    let items: BTreeSet<String> = tags(&section(&page, "ENVIRONMENT"))
        .into_iter()
        .flat_map(|(_, t)| tag_words(&t))
        .collect();
    for v in &vars {
        assert!(items.contains(v), "depmod.8 ENVIRONMENT has no item {v}");
    }
}

/// The first words of the DIRECTIVES items of depmod.d.5 (`include, make_map_files`
/// gives both), and all the words of its items, nested ones included.
fn directive_items() -> (Vec<String>, BTreeSet<String>) {
    let page = page("depmod.d.5");
    let items = tags(&section(&page, "DIRECTIVES"));
    let mut directives = Vec::new();
    let mut all = BTreeSet::new();
    for (depth, tag) in &items {
        let words = tag_words(tag);
        all.extend(words.iter().cloned());
        if *depth == 0 {
            // `.B search entry ...` names one; `.BR include ", " make_map_files` two.
            if tag.starts_with(".BR") {
                directives.extend(words);
            } else if let Some(w) = words.first() {
                directives.push(w.clone());
            }
        }
    }
    (directives, all)
}

#[test]
fn every_keyword_of_the_parser_is_documented() {
    // Every `b"word" =>` or `b"word" |` of the parser: directives and the
    // `search` keywords.
    let src = source("src/config.rs");
    let start = src
        .find("pub fn parse")
        .expect("Config::parse in config.rs");
    let end = start
        + src[start..]
            .find("\n    }\n}")
            .expect("end of Config::parse");
    let keywords: BTreeSet<String> = byte_literals(&src[start..end])
        .into_iter()
        .filter(|(_, next)| next == "=>" || next.starts_with('|'))
        .map(|(w, _)| w)
        .collect();
    for k in ["search", "override", "external", "exclude", "built-in"] {
        assert!(
            keywords.contains(k),
            "parser keywords {keywords:?} lack {k}"
        );
    }
    let (_, words) = directive_items();
    for k in &keywords {
        assert!(words.contains(k), "depmod.d.5 DIRECTIVES has no item {k}");
    }
}

#[test]
fn documented_directives_are_what_the_parser_does() {
    let (directives, _) = directive_items();
    assert_eq!(
        directives,
        [
            "search",
            "override",
            "external",
            "exclude",
            "include",
            "make_map_files"
        ],
        "DIRECTIVES items of depmod.d.5"
    );
    let text = b"search updates built-in external\n\
                 override m * sub\n\
                 external * /x\n\
                 exclude a b\n\
                 include y\n\
                 make_map_files\n\
                 frobnicate z\n";
    let mut config = Config::default();
    let mut diags = Vec::new();
    config.parse(b"t.conf", text, b"4.4.4", &mut diags);
    let mut bad = Vec::new();
    let mut not_implemented = Vec::new();
    for d in &diags {
        match d {
            Diag::ConfigBadLine(_, _, cmd) => bad.push(String::from_utf8_lossy(cmd).into_owned()),
            Diag::ConfigNotImplemented(_, _, cmd) => {
                not_implemented.push(String::from_utf8_lossy(cmd).into_owned())
            }
            other => panic!("unexpected diagnostic {other:?}"),
        }
    }
    assert_eq!(bad, ["frobnicate"]);
    assert_eq!(not_implemented, ["include", "make_map_files"]);
    assert_eq!(config.search.len(), 3);
    assert_eq!(config.overrides, [b"sub/m".to_vec()]);
    assert_eq!(config.externals, [b"/x".to_vec()]);
    assert_eq!(config.excludes.len(), 2);
}
