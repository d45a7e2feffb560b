//! glibc's `regcomp(REG_EXTENDED|REG_NOSUB)` and `regexec`, the model of the patterns
//! in depmod.d (`depmod::ere`): a tiny C program, compiled with `cc`, answers one
//! pattern/text pair a line.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

const ORACLE_C: &str = r#"
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* stdin: one pair per line, "<pattern hex>,<text hex>".
   stdout: one line per pair: "E<regcomp error>", "1" (match), "0" (no match), or "T"
   when glibc needed more than 2 s (its back-reference matcher is exponential). */
static sigjmp_buf timeout_jmp;

static void on_alarm(int sig)
{
	(void)sig;
	siglongjmp(timeout_jmp, 1);
}

static void unhex(char *s)
{
	char *o = s;
	while (s[0] && s[1]) {
		unsigned v;
		sscanf(s, "%2x", &v);
		*o++ = (char)v;
		s += 2;
	}
	*o = 0;
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	signal(SIGALRM, on_alarm);
	/* One line per answer even if a later pattern crashes glibc. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = 0;
		char *comma = strchr(line, ',');
		if (!comma) {
			puts("?");
			continue;
		}
		*comma = 0;
		char *pat = line, *text = comma + 1;
		unhex(pat);
		unhex(text);
		if (sigsetjmp(timeout_jmp, 1)) {
			/* Abandoned mid-call: the regex_t leaks, which is fine here. */
			puts("T");
			fflush(stdout);
			continue;
		}
		alarm(2);
		regex_t re;
		int rc = regcomp(&re, pat, REG_EXTENDED | REG_NOSUB);
		if (rc) {
			alarm(0);
			printf("E%d\n", rc);
			continue;
		}
		int m = regexec(&re, text, 0, NULL, 0) == 0;
		alarm(0);
		printf("%d\n", m);
		regfree(&re);
	}
	return 0;
}
"#;

/// Compiles the oracle program; panics (test failure) if `cc` is unavailable.
pub fn build_oracle(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("ere_oracle.c");
    let exe = dir.join("ere_oracle");
    std::fs::write(&src, ORACLE_C).unwrap();
    let status = Command::new("cc")
        .arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run `cc` (a C compiler is required for this test): {e}")
        });
    assert!(
        status.success(),
        "cc failed to build the regex oracle: {status}"
    );
    exe
}

fn hex(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s {
        write!(out, "{b:02x}").unwrap();
    }
    out
}

/// Runs every pair through glibc. A pair on which the oracle process dies (glibc's
/// regex code can crash on odd patterns) gets the answer "C" and the oracle is restarted
/// for the pairs after it.
pub fn glibc(exe: &std::path::Path, pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
    let mut answers: Vec<String> = Vec::with_capacity(pairs.len());
    while answers.len() < pairs.len() {
        let rest = &pairs[answers.len()..];
        let mut input = String::new();
        for (p, t) in rest {
            writeln!(input, "{},{}", hex(p), hex(t)).unwrap();
        }
        let mut child = Command::new(exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the regex oracle");
        let mut stdin = child.stdin.take().unwrap();
        // A crashing oracle closes the pipe early: that write error is expected.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let complete = lines.len() == rest.len();
        answers.extend(lines.into_iter().take(rest.len()));
        if complete {
            assert!(out.status.success(), "oracle failed: {}", out.status);
        } else {
            assert!(
                !out.status.success(),
                "oracle output has the wrong number of lines"
            );
            answers.push("C".to_string());
        }
    }
    answers
}
