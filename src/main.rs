//! The `depmod` command line: GNU `getopt_long` behaviour on `lexopt` (kmod 34.2's
//! options, abbreviations, messages and exit codes), then [`depmod::host::run`].

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::ExitCode;

use depmod::host::{self, Options, Report};

/// On musl (the static dist binaries), dlmalloc instead of musl's own allocator,
/// which returns memory to the kernel so eagerly that it costs a third of the run
/// time (Cargo.toml has the numbers). Feature `musl-dlmalloc`, which `dist --tiny`
/// leaves out for size.
#[cfg(all(target_env = "musl", feature = "musl-dlmalloc"))]
#[global_allocator]
static GLOBAL: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// kmod 34.2's long options, in its table order (glibc lists ambiguous matches in
/// this order). The char is the equivalent short option; `true` = takes an argument.
const LONG: &[(&str, char, bool)] = &[
    ("all", 'a', false),
    ("quick", 'A', false),
    ("basedir", 'b', true),
    ("moduledir", 'm', true),
    ("outdir", 'o', true),
    ("config", 'C', true),
    ("symvers", 'E', true),
    ("filesyms", 'F', true),
    ("errsyms", 'e', false),
    ("verbose", 'v', false),
    ("show", 'n', false),
    ("dry-run", 'n', false),
    ("symbol-prefix", 'P', true),
    ("warn", 'w', false),
    ("version", 'V', false),
    ("help", 'h', false),
];

const SHORT_WITH_ARG: &str = "bmoCEFP";
const SHORT_FLAGS: &str = "aAenvwVh";

fn help(prog: &str) -> String {
    format!(
        "Usage:\n\
\t{prog} -[aA] [options] [forced_version]\n\
\n\
If no arguments (except options) are given, \"depmod -a\" is assumed\n\
\n\
depmod will output a dependency list suitable for the modprobe utility.\n\
\n\
Options:\n\
\t-a, --all            Probe all modules\n\
\t-A, --quick          Only does the work if there's a new module\n\
\t-e, --errsyms        Report not supplied symbols\n\
\t-n, --show           Write the dependency file on stdout only\n\
\t-P, --symbol-prefix  Architecture symbol prefix\n\
\t-C, --config=PATH    Read configuration from PATH\n\
\t-v, --verbose        Enable verbose mode\n\
\t-w, --warn           Warn on duplicates\n\
\t-V, --version        show version\n\
\t-h, --help           show this help\n\
\n\
The following options are useful for people managing distributions:\n\
\t-b, --basedir=DIR    Root path (default: /).\n\
\t-m, --moduledir=DIR  Module directory (default: /lib/modules).\n\
\t-o, --outdir=DIR     Output root path (default: same as <basedir>).\n\
\t-F, --filesyms=FILE  Use the file instead of the\n\
\t                     current kernel symbols.\n\
\t-E, --symvers=FILE   Use Module.symvers file to check\n\
\t                     symbol versions.\n"
    )
}

fn version() -> String {
    let feature = |on: bool, name: &str| format!("{}{name}", if on { '+' } else { '-' });
    format!(
        "kmod version 34.2 (depmod-rs {})\n{} {} {} -OPENSSL\n",
        env!("CARGO_PKG_VERSION"),
        feature(cfg!(feature = "zst"), "ZSTD"),
        feature(cfg!(feature = "xz"), "XZ"),
        feature(cfg!(feature = "gz"), "ZLIB"),
    )
}

/// Resolves a long option name (possibly an abbreviation) like glibc does.
fn long_option(prog: &str, name: &str) -> Result<(&'static str, char, bool), String> {
    if let Some(&(n, c, a)) = LONG.iter().find(|o| o.0 == name) {
        return Ok((n, c, a));
    }
    let matches: Vec<_> = LONG.iter().filter(|o| o.0.starts_with(name)).collect();
    match matches.as_slice() {
        [] => Err(format!("{prog}: unrecognized option '--{name}'")),
        [only] => Ok((only.0, only.1, only.2)),
        several @ [first, ..] => {
            // glibc: not ambiguous if every candidate means the same thing.
            if several.iter().all(|o| o.1 == first.1 && o.2 == first.2) {
                return Ok((first.0, first.1, first.2));
            }
            let list: Vec<String> = several.iter().map(|o| format!(" '--{}'", o.0)).collect();
            Err(format!(
                "{prog}: option '--{name}' is ambiguous; possibilities:{}",
                list.concat()
            ))
        }
    }
}

enum Parsed {
    Run(Box<Options>),
    Exit(u8),
}

fn parse(prog: &str, report: &Report) -> Parsed {
    use lexopt::prelude::*;
    let mut opts = Options::default();
    let mut positional: Vec<OsString> = Vec::new();
    let mut parser = lexopt::Parser::from_env();
    let fail = |msg: String| {
        eprintln!("{msg}");
        Parsed::Exit(1)
    };
    loop {
        let arg = match parser.next() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(lexopt::Error::UnexpectedValue { option, .. }) => {
                return fail(format!(
                    "{prog}: option '{option}' doesn't allow an argument"
                ));
            }
            Err(e) => return fail(format!("{prog}: {e}")),
        };
        let (c, long_name) = match arg {
            Value(v) => {
                positional.push(v);
                continue;
            }
            Short(c) => {
                if !SHORT_WITH_ARG.contains(c) && !SHORT_FLAGS.contains(c) {
                    return fail(format!("{prog}: invalid option -- '{c}'"));
                }
                (c, None)
            }
            Long(name) => match long_option(prog, name) {
                Ok((full, c, _)) => (c, Some(full)),
                Err(msg) => return fail(msg),
            },
        };
        let mut value = || -> Result<OsString, String> {
            parser.value().map_err(|_| match long_name {
                Some(n) => format!("{prog}: option '--{n}' requires an argument"),
                None => format!("{prog}: option requires an argument -- '{c}'"),
            })
        };
        let needs_arg = SHORT_WITH_ARG.contains(c);
        let v = if needs_arg {
            match value() {
                Ok(v) => Some(v),
                Err(msg) => return fail(msg),
            }
        } else {
            None
        };
        let v = v.unwrap_or_default();
        match c {
            'a' => opts.all = true,
            'A' => opts.quick = true,
            'b' => opts.basedir = Some(host::make_absolute(v.as_bytes())),
            'm' => opts.moduledir = Some(v.into_vec()),
            'o' => opts.outdir = Some(host::make_absolute(v.as_bytes())),
            'C' => opts.config.push(v.into_vec()),
            'E' => opts.symvers = Some(v.into_vec()),
            'F' => opts.system_map = Some(v.into_vec()),
            'e' => opts.errsyms = true,
            'v' => {
                opts.verbose += 1;
                report.set_verbosity(opts.verbose);
            }
            'n' => opts.dry_run = true,
            'P' => {
                let &[prefix] = v.as_bytes() else {
                    report.fatal("-P only takes a single char");
                    return Parsed::Exit(1);
                };
                opts.prefix = Some(prefix);
            }
            'w' => opts.warn = true,
            'V' => {
                print!("{}", version());
                return Parsed::Exit(0);
            }
            'h' => {
                print!("{}", help(prog));
                return Parsed::Exit(0);
            }
            // Not reached: every option accepted above is handled. Should one be
            // missed, refuse it as getopt refuses an unknown option.
            _ => return fail(format!("{prog}: invalid option -- '{c}'")),
        }
    }
    let mut rest = positional.into_iter();
    match rest.next() {
        Some(v) => {
            if !host::is_kernel_version(v.as_bytes()) {
                report.error(format_args!("Bad version passed {}", v.to_string_lossy()));
                return Parsed::Exit(1);
            }
            opts.kversion = Some(v.into_vec());
        }
        None => opts.kversion = None,
    }
    opts.files = rest.map(OsString::into_vec).collect();
    Parsed::Run(Box::new(opts))
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsStr::new("depmod").to_owned());
    let prog = depmod::names::basename(argv0.as_bytes()).to_vec();
    let prog = String::from_utf8_lossy(&prog).into_owned();
    let report = Report::new(prog.clone());
    let code = match parse(&prog, &report) {
        Parsed::Exit(code) => code,
        Parsed::Run(opts) => host::run(*opts, &report),
    };
    let _ = std::io::stdout().flush();
    ExitCode::from(code)
}
