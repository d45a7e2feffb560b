//! Dependency cycles: the "Cycle detected" report, and what ours does where kmod's
//! report aborts on an assertion or never ends (exit 1, kmod's lines up to there,
//! nothing written).
//!
//! Oracles: kmod 34.2, compared with ours on everything (every output file incl. the
//! `.bin` indexes and their modes, stdout, stderr, exit status), and kmod 30 on the
//! text files; see `tests/common/scenario.rs` (`check`; `check34`: kmod 34.2 alone).

mod common;

use common::oracle::*;
use common::scenario::*;
use common::tree::*;
use std::time::Duration;

/// One module per node of `graph`: `kernel/<prefix><node>.ko` exports
/// `<prefix><node>_fn` (`-` becomes `_` in symbols) and imports the `_fn` of each node
/// it points to.
fn graph_modules(t: &Tree, prefix: &str, graph: &[(&str, &[&str])]) {
    let sym = |m: &str| format!("{}{m}_fn", prefix.replace('-', "_"));
    for (m, deps) in graph {
        let imports: Vec<String> = deps.iter().map(|d| sym(d)).collect();
        let imports: Vec<&str> = imports.iter().map(|s| s.as_str()).collect();
        t.module(
            &format!("kernel/{prefix}{m}.ko"),
            km(&[&sym(m)], &imports).build(),
        );
    }
}

/// `p`, `q` and `r`, each importing from the other two.
const COMPLETE_3: &[(&str, &[&str])] =
    &[("p", &["q", "r"]), ("q", &["p", "r"]), ("r", &["p", "q"])];

/// `check` with a timeout of `secs` on every run (where kmod is expected to hang).
fn check_with_timeout(t: &Tree, secs: u64) -> Outcome {
    let d = Diff {
        run: RunOpts {
            timeout: Duration::from_secs(secs),
            ..RunOpts::default()
        },
        ..diff_opts(t)
    };
    check_with(t, &args(t, &[]), &d)
}

/// kmod's `depmod_detect_loop` test: exact stderr, exit 1, nothing written.
#[test]
fn cycles_detect_loop() {
    let t = Tree::new("4.4.4");
    t.order("");
    let graph: &[(&str, &[&str])] = &[
        ("a", &["b"]),
        ("b", &["c"]),
        ("c", &["a"]),
        ("d", &["e"]),
        ("e", &["d"]),
        ("f", &[]),
        ("g", &[]),
        ("h", &["i"]),
        ("i", &["j"]),
        ("j", &["h", "k"]),
        ("k", &["h"]),
    ];
    graph_modules(&t, "mod-loop-", graph);
    let o = check(&t, &[]);
    assert_eq!(
        o.stderr_str(),
        "depmod: ERROR: Cycle detected: mod_loop_d -> mod_loop_e -> mod_loop_d\n\
               depmod: ERROR: Cycle detected: mod_loop_i -> mod_loop_j -> mod_loop_k -> mod_loop_h -> mod_loop_i\n\
               depmod: ERROR: Cycle detected: mod_loop_i -> mod_loop_j -> mod_loop_h -> mod_loop_i\n\
               depmod: ERROR: Cycle detected: mod_loop_c -> mod_loop_a -> mod_loop_b -> mod_loop_c\n\
               depmod: ERROR: Found 9 modules in dependency cycles!\n"
    );
    assert_eq!(o.status, Status::Exit(1));
    assert!(o.files.is_empty());
    check(&t, &["-n"]);
    check(&t, &["-v"]);
}

#[test]
fn cycles_simple_and_self() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module("kernel/x.ko", km(&["x_fn"], &["y_fn"]).build());
    t.module("kernel/y.ko", km(&["y_fn"], &["x_fn"]).build());
    t.module("kernel/ok.ko", km(&[], &["x_fn"]).build());
    check(&t, &[]);
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    t.module("kernel/self.ko", km(&["self_fn"], &["self_fn"]).build());
    t.module("kernel/other.ko", km(&[], &["self_fn"]).build());
    check(&t, &[]);
}

/// kmod aborts on an assertion (stack overflow of its cycle walk): ours must exit 1
/// with the cycle lines kmod printed first, an error line, and write nothing.
#[test]
fn cycles_kmod_abort() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    graph_modules(&t, "", COMPLETE_3);
    let aborts = |order: &[&str]| {
        t.order_lines(order);
        let o = check(&t, &[]);
        assert_eq!(
            o.status,
            Status::Signal(6),
            "expected kmod 34.2 to abort:\n{}",
            o.stderr_str()
        );
        o
    };
    // p, q, r in this order: kmod's stack overflows before any cycle is printed.
    aborts(&["kernel/p.ko", "kernel/q.ko", "kernel/r.ko"]);
    // q first: one cycle line, then the abort.
    let o = aborts(&["kernel/q.ko", "kernel/p.ko", "kernel/r.ko"]);
    assert_eq!(cycle_lines(&o.stderr).len(), 1, "{}", o.stderr_str());
}

/// The same complete graph with `r` first: kmod prints ever longer "Cycle detected"
/// lines without end (a non-terminating case compat §6.4 does not list: the root is on
/// the cycle). Ours must stop with exit 1 after printing a prefix of kmod's lines.
#[test]
fn cycles_kmod_endless_output() {
    let t = Tree::new("4.4.4");
    t.builtin("");
    t.builtin_modinfo(b"");
    graph_modules(&t, "", COMPLETE_3);
    t.order_lines(&["kernel/r.ko", "kernel/p.ko", "kernel/q.ko"]);
    let o = check_with_timeout(&t, 3);
    assert_eq!(
        o.status,
        Status::Timeout,
        "expected kmod 34.2 to hang:\n{}",
        clip(&o.stderr, 2000)
    );
    assert!(o.stderr.starts_with(
        b"depmod: ERROR: Cycle detected: r -> q -> r\n\
          depmod: ERROR: Cycle detected: r -> q -> p -> r\n\
          depmod: ERROR: Cycle detected: r -> q -> p -> q -> r\n"
    ));
}

/// kmod loops forever when a root only leads into a cycle (A↔B, A→X, X→Y, Y↔Z with X
/// first): ours must terminate the same way as for the abort.
#[test]
fn cycles_kmod_hang() {
    let t = Tree::new("4.4.4");
    t.builtin("");
    t.builtin_modinfo(b"");
    graph_modules(
        &t,
        "",
        &[
            ("a", &["b", "x"]),
            ("b", &["a"]),
            ("x", &["y"]),
            ("y", &["z"]),
            ("z", &["y"]),
        ],
    );
    t.order_lines(&[
        "kernel/x.ko",
        "kernel/a.ko",
        "kernel/b.ko",
        "kernel/y.ko",
        "kernel/z.ko",
    ]);
    let o = check_with_timeout(&t, 5);
    assert_eq!(
        o.status,
        Status::Timeout,
        "expected kmod 34.2 to hang:\n{}",
        o.stderr_str()
    );
}
