//! depmod.d: how the configuration is parsed (bad lines, continuations, comments,
//! which files of which `-C` directories count), and what `search`, `override`,
//! `external` and `exclude` decide among modules of the same name (kmod's
//! testsuite/test-depmod.c cases and more).
//!
//! Oracles: kmod 34.2, compared with ours on everything (every output file incl. the
//! `.bin` indexes and their modes, stdout, stderr, exit status), and kmod 30 on the
//! text files; see `tests/common/scenario.rs` (`check`; `check34`: kmod 34.2 alone).

mod common;

use common::oracle::*;
use common::scenario::*;
use common::tree::*;
use std::fs;

// ---------------------------------------------------------------------------------------
// parsing

/// Config parsing: bad lines, continuations, comments, file collection rules, INFO
/// messages (`-vv`: libkmod pointers are masked).
#[test]
fn config_parsing() {
    let t = Tree::new("4.4.4");
    t.empty_inputs();
    for d in ["kernel", "updates", "extra", "weird"] {
        t.module(&format!("{d}/dup.ko"), km(&[], &[]).build());
    }
    t.conf(
        "a.conf",
        "# comment\n\n   \nbogus line\n  # indented comment\nsearch \\\nweird\\\n extra\n\tsearch\tbuilt-in  \nsearch\ninclude /etc/foo.conf\nmake_map_files\noverride x\nexternal 4.4.4\nexclude\nsearch up\\dates",
    );
    t.conf("b.conf", "search kernel\r\n");
    t.conf("README", "not a conf\n");
    t.conf(".hidden.conf", "search extra\n");
    t.conf(".conf", "bogus\n");
    t.conf("x.con", "bogus\n");
    fs::create_dir_all(t.confdir().join("sub.conf")).unwrap();
    // A second config dir: same file name (ignored), new name (used), sorted by name.
    t.write("etc/other.d/a.conf", "bogus from other\n");
    t.write("etc/other.d/0.conf", "search extra\n");
    t.write("etc/single", "search weird\n");
    let c2 = t.path("etc/other.d").display().to_string();
    let single = t.path("etc/single").display().to_string();
    let d = Diff {
        mask_pointers: true,
        ..diff_opts(&t)
    };
    for extra in [
        &[][..],
        &["-C", &c2],
        &["-C", &c2, "-C", &single],
        &["-C", "/nonexistent/dir"],
        &["-vv"],
        &["-vv", "-C", &c2],
    ] {
        check_with(&t, &args(&t, extra), &d);
    }
    // Only the later -C paths (no conf dir at all).
    let argv = vec![
        "-b".to_string(),
        t.root.display().to_string(),
        "-C".into(),
        c2.clone(),
        "-vv".into(),
        "4.4.4".into(),
    ];
    check_with(&t, &argv, &d);
    let argv = vec![
        "-b".to_string(),
        t.root.display().to_string(),
        "-C".into(),
        single,
        "4.4.4".into(),
    ];
    check_with(&t, &argv, &d);
}

// ---------------------------------------------------------------------------------------
// search, override, external, exclude

#[test]
fn kmod_testsuite_search_orders() {
    // depmod_search_order_simple
    let o = dup_case(
        &["kernel/crypto", "updates"],
        &[],
        &[("search.conf", "search updates built-in\n")],
    );
    assert!(dep(&o).contains("updates/mod-simple.ko:\n"), "{}", dep(&o));
    // depmod_search_order_same_prefix
    let o = dup_case(
        &["foo", "foobar"],
        &[],
        &[("search.conf", "search foobar foo built-in\n")],
    );
    assert!(dep(&o).contains("foobar/mod-simple.ko:\n"), "{}", dep(&o));
    // depmod_search_order_external_first / _last
    let ext = &[(
        "external.conf",
        "external 4\\.4\\..* @ROOT@/lib/modules/external\n",
    )];
    let mut c = ext.to_vec();
    c.push(("search.conf", "search external foobar foo built-in\n"));
    let o = dup_case(&["foo", "foobar"], &["lib/modules/external"], &c);
    assert!(
        dep(&o).contains("/lib/modules/external/mod-simple.ko:\n"),
        "{}",
        dep(&o)
    );
    let mut c = ext.to_vec();
    c.push(("search.conf", "search foobar foo built-in external\n"));
    let o = dup_case(&["foo", "foobar"], &["lib/modules/external"], &c);
    assert!(
        dep(&o).contains("\nfoobar/mod-simple.ko:\n")
            || dep(&o).starts_with("foobar/mod-simple.ko:\n"),
        "{}",
        dep(&o)
    );
    // depmod_search_order_override
    let o = dup_case(
        &["foo", "override"],
        &[],
        &[
            ("override.conf", "override mod-simple 4.4.4 override\n"),
            ("search.conf", "search foo built-in\n"),
        ],
    );
    assert!(dep(&o).contains("override/mod-simple.ko:\n"), "{}", dep(&o));
}

#[test]
fn duplicate_resolution_configs() {
    let kdirs = &["kernel/a", "updates", "extra", "kernel/b"][..];
    // Default (no config): updates beats everything, otherwise first found.
    dup_case(kdirs, &[], &[]);
    dup_case(&["kernel/a", "kernel/b", "extra"], &[], &[]);
    // built-in only / explicit orders.
    dup_case(kdirs, &[], &[("a.conf", "search built-in\n")]);
    dup_case(kdirs, &[], &[("a.conf", "search extra updates built-in\n")]);
    dup_case(kdirs, &[], &[("a.conf", "search extra\nsearch updates\n")]);
    dup_case(kdirs, &[], &[("a.conf", "search kernel/b kernel\n")]);
    dup_case(
        kdirs,
        &[],
        &[("b.conf", "search updates\n"), ("a.conf", "search extra\n")],
    );
    // Same search directory twice (the `else` quirk): later found wins.
    dup_case(
        &["updates/x", "updates/y", "kernel"],
        &[],
        &[("a.conf", "search updates built-in\n")],
    );
    dup_case(
        &["updates/dkms", "updates", "kernel"],
        &[],
        &[("a.conf", "search updates/dkms updates\n")],
    );
    // Prefix without slash boundary.
    dup_case(
        &["updatesfoo", "kernel"],
        &[],
        &[("a.conf", "search updates\n")],
    );
    // Overrides.
    dup_case(
        kdirs,
        &[],
        &[("a.conf", "override mod-simple 4.4.4 kernel/b\n")],
    );
    dup_case(
        kdirs,
        &[],
        &[("a.conf", "override mod_simple * kernel/b\n")],
    );
    dup_case(
        kdirs,
        &[],
        &[(
            "a.conf",
            "override mod-simple * kernel/b\noverride mod-simple 4\\.4 extra\n",
        )],
    );
    dup_case(
        kdirs,
        &[],
        &[(
            "a.conf",
            "override mod-simple 5.0 kernel/b\noverride mod-simple [ extra\n",
        )],
    );
    dup_case(
        kdirs,
        &[],
        &[(
            "a.conf",
            "override mod-simple 4.4.4 kernel/b/\noverride mod-simple\n",
        )],
    );
    // Externals (absolute dirs outside DIR), several, ranked by config order.
    let ext2 = "external * @ROOT@/ext/one\nexternal 4.4.4 @ROOT@/ext/two\n";
    dup_case(kdirs, &["ext/one", "ext/two"], &[("a.conf", ext2)]);
    dup_case(
        kdirs,
        &["ext/one", "ext/two"],
        &[("a.conf", ext2), ("b.conf", "search external built-in\n")],
    );
    dup_case(
        kdirs,
        &["ext/one", "ext/two"],
        &[
            ("a.conf", ext2),
            ("b.conf", "search built-in external updates\n"),
        ],
    );
    dup_case(
        kdirs,
        &["ext/one", "ext/two"],
        &[(
            "a.conf",
            "external 9.9 @ROOT@/ext/one\nexternal 4 @ROOT@/ext/missing\n",
        )],
    );
    // An external dir inside DIR.
    dup_case(
        kdirs,
        &["lib/modules/4.4.4/inside"],
        &[(
            "a.conf",
            "external 4.4.4 @ROOT@/lib/modules/4.4.4/inside\nsearch external\n",
        )],
    );
    // Exclude.
    dup_case(kdirs, &[], &[("a.conf", "exclude updates\n")]);
    dup_case(kdirs, &[], &[("a.conf", "exclude mod-simple.ko extra\n")]);
    dup_case(
        kdirs,
        &["ext/one"],
        &[("a.conf", "exclude one b\nexternal * @ROOT@/ext/one\n")],
    );
}
