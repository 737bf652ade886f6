#!/usr/bin/env python3
"""Mutation testing: breaks one rule at a time in a scratch copy and checks a test notices.

Entries live in tests/mutation/*.mut; docs/testing.md ("Mutation testing") describes the
format. For each selected entry: apply it to the scratch copy, rebuild (incrementally), run the
entry's tests, restore the file. A mutation is killed when at least one of its tests fails or
times out; one that survives fails the run, and so does an entry that is wrong (its text no
longer matches the code, its mutation does not compile): a list that no longer fits the code is
an error to fix, never a skip.

Exit status: 0 every selected mutation was killed; 1 a mutation survived; 2 the list is wrong
(an invalid entry, a mutation that does not compile) or the unmutated tree does not build or
pass its tests.
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

KEYS = ("id", "file", "from", "to", "why", "tests", "ci", "timeout")
REQUIRED = ("id", "file", "from", "to", "why", "tests")
DEFAULT_TIMEOUT = 120
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
TEST_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
# Compiler output shown for a mutation that does not build.
BUILD_LOG_LINES = 15
# Test output shown for a baseline failure.
TEST_LOG_LINES = 40


class ListError(Exception):
    """The mutation list is wrong; the message names file:line."""


class Entry:
    def __init__(self, path, line):
        self.path = path  # the .mut file, relative to the repository
        self.line = line  # first line of the block
        self.lines = {}  # key -> line number
        self.fields = {}  # key -> raw value

    def where(self, key=None):
        return "%s:%d" % (self.path, self.lines.get(key, self.line))

    @property
    def id(self):
        return self.fields["id"]

    @property
    def file(self):
        return self.fields["file"]

    @property
    def old(self):
        return unescape(self.fields["from"])

    @property
    def new(self):
        return unescape(self.fields["to"])

    @property
    def why(self):
        return self.fields["why"]

    @property
    def tests(self):
        return self.fields["tests"].split()

    @property
    def ci(self):
        return self.fields.get("ci", "no") == "yes"

    @property
    def timeout(self):
        return int(self.fields.get("timeout", DEFAULT_TIMEOUT))


def unescape(s):
    """`\\n` is a newline, `\\\\` a backslash; any other backslash stays as it is."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in "n\\":
            out.append("\n" if s[i + 1] == "n" else "\\")
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def occurrences(text, needle):
    """Where needle starts in text, overlapping matches included."""
    found, at = [], text.find(needle)
    while at >= 0:
        found.append(at)
        at = text.find(needle, at + 1)
    return found


def parse_file(root, rel):
    """The blocks of one .mut file, and the problems found in its syntax."""
    entries, errors, cur = [], [], None
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        text = f.read()
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if line.strip() == "":
            cur = None
            continue
        if line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or key not in KEYS:
            errors.append("%s:%d: expected one of %s followed by ':', got %r"
                          % (rel, n, ", ".join(KEYS), line[:60]))
            continue
        if cur is None:
            cur = Entry(rel, n)
            entries.append(cur)
        if key in cur.fields:
            errors.append("%s:%d: '%s' given twice in the block of line %d"
                          % (rel, n, key, cur.line))
            continue
        cur.fields[key] = value.strip()
        cur.lines[key] = n
    return entries, errors


def validate(root, entries):
    """Every problem of the list, as 'file:line: why' strings; checks the code as it is in
    the working tree (what the scratch copy is made of)."""
    errors, seen, cache = [], {}, {}
    for e in entries:
        missing = [k for k in REQUIRED if k not in e.fields]
        if missing:
            errors.append("%s: block without %s" % (e.where(), ", ".join(missing)))
            continue
        if not ID_RE.match(e.id):
            errors.append("%s: id %r: use lower-case letters, digits and '-'"
                          % (e.where("id"), e.id))
        if e.id in seen:
            errors.append("%s: id %r already used at %s" % (e.where("id"), e.id, seen[e.id]))
        seen.setdefault(e.id, e.where("id"))
        if e.fields["why"] == "":
            errors.append("%s: 'why' is empty" % e.where("why"))
        if not e.tests:
            errors.append("%s: 'tests' names no test" % e.where("tests"))
        for t in e.tests:
            if not TEST_RE.match(t):
                errors.append("%s: %r is not a CTest name" % (e.where("tests"), t))
        if e.fields.get("ci", "no") not in ("yes", "no"):
            errors.append("%s: ci must be 'yes' or 'no'" % e.where("ci"))
        if "timeout" in e.fields and not re.match(r"^[1-9][0-9]*$", e.fields["timeout"]):
            errors.append("%s: timeout must be a positive number of seconds"
                          % e.where("timeout"))
        if e.old == "":
            errors.append("%s: 'from' is empty" % e.where("from"))
            continue
        if e.old == e.new:
            errors.append("%s: 'to' is the same as 'from'" % e.where("to"))
        path = os.path.normpath(os.path.join(root, e.file))
        if os.path.isabs(e.file) or not path.startswith(root + os.sep):
            errors.append("%s: file %r is not inside the repository" % (e.where("file"), e.file))
            continue
        if path not in cache:
            try:
                with open(path, encoding="utf-8", newline="") as f:
                    cache[path] = f.read()
            except OSError as err:
                cache[path] = None
                errors.append("%s: %s: %s" % (e.where("file"), e.file, err.strerror))
        if cache[path] is None:
            continue
        n = len(occurrences(cache[path], e.old))
        if n != 1:
            errors.append("%s: 'from' occurs %s in %s: the code moved or changed; fix the entry"
                          % (e.where("from"), "nowhere" if n == 0 else "%d times" % n, e.file))
    return errors


def load(root, mutation_dir):
    root = os.path.abspath(root)
    d = os.path.join(root, mutation_dir)
    files = sorted(f for f in os.listdir(d) if f.endswith(".mut")) if os.path.isdir(d) else []
    if not files:
        raise ListError("%s: no .mut files" % mutation_dir)
    entries, errors = [], []
    for name in files:
        got, errs = parse_file(root, os.path.join(mutation_dir, name))
        entries += got
        errors += errs
    errors += validate(root, entries)
    if errors:
        raise ListError("\n".join(errors))
    return entries


# ---- the scratch copy ----------------------------------------------------------------------

def tracked_files(root):
    """Tracked files plus new ones git does not ignore, as they are in the working tree."""
    out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, stdout=subprocess.PIPE).stdout
    return sorted({p for p in out.decode().split("\0") if p})


def same_file(a, b):
    if os.path.islink(a) or os.path.islink(b):
        return os.path.islink(a) and os.path.islink(b) and os.readlink(a) == os.readlink(b)
    if not os.path.isfile(b) or os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def sync_tree(root, dest):
    """Makes dest a copy of the working tree. Unchanged files keep their time stamps, so the
    build stays incremental; a changed file gets a new one, so it is always rebuilt (a copy
    keeping the source's older stamp could pass for built)."""
    files = tracked_files(root)
    inside = os.path.relpath(os.path.dirname(dest), root) + os.sep
    wanted = set()
    for rel in files:
        src = os.path.join(root, rel)
        if not os.path.lexists(src) or rel.startswith(inside):
            continue  # deleted in the working tree, or the scratch directory itself
        wanted.add(rel)
        dst = os.path.join(dest, rel)
        if os.path.lexists(dst) and same_file(src, dst):
            if not os.path.islink(src):
                shutil.copymode(src, dst)
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.lexists(dst) or os.path.isdir(dst):
            if os.path.isdir(dst) and not os.path.islink(dst):
                shutil.rmtree(dst)
            else:
                os.unlink(dst)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copyfile(src, dst)
            shutil.copymode(src, dst)
    for dirpath, dirnames, filenames in os.walk(dest, topdown=False):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if os.path.relpath(full, dest) not in wanted:
                os.unlink(full)
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                if os.path.relpath(full, dest) not in wanted:
                    os.unlink(full)
            elif not os.listdir(full):
                os.rmdir(full)


# ---- building and testing ------------------------------------------------------------------

def run(cmd, cwd=None, timeout=None, env=None):
    """Runs cmd in its own process group; returns (status, output, timed_out). On timeout the
    whole group goes (the test and any pipemsgd it started)."""
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, env=env)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode(errors="replace"), False
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, _ = p.communicate()
        return None, out.decode(errors="replace"), True
    except BaseException:
        kill_group(p)
        p.wait()
        raise


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tail(text, n):
    lines = text.rstrip("\n").split("\n")
    return "\n".join("    " + l for l in lines[-n:])


def ctest_names(build):
    rc, out, _ = run(["ctest", "-N"], cwd=build)
    if rc != 0:
        raise ListError("ctest -N failed in %s:\n%s" % (build, tail(out, TEST_LOG_LINES)))
    return set(re.findall(r"Test\s+#\d+:\s+(\S+)", out))


def default_targets(build):
    """The files `ninja` builds by default: `all` expanded through its phony groups
    (`tests/all`, `service/all`, ...)."""
    files, todo, seen = [], ["all"], set()
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        rc, out, _ = run(["ninja", "-t", "query", t], cwd=build)
        if rc != 0:
            raise ListError("ninja -t query %s failed in %s:\n%s" % (t, build, tail(out, 5)))
        group = re.search(r"^  input: phony\n((?:    \S.*\n)*)", out, re.M)
        if group:
            # "| x" and "|| x" are implicit and order-only inputs: built all the same.
            todo.extend(line.strip().lstrip("|").strip() for line in group.group(1).splitlines())
        else:
            files.append(t)
    return sorted(files)


def targets_for(everything, tests):
    """What to rebuild for a mutation: the programs of its tests and everything that is not a
    test program (pipemsgd, pipemsg, the libraries, examples and bindings, which tests start).
    Relinking all fifty test programs took most of each mutation's time. A test that is no
    program of its own (a script, the install) gets everything: None."""
    own = {"bin/" + t for t in tests}
    if not own <= set(everything):
        return None
    return [t for t in everything if not t.startswith("bin/test_") or t in own]


def ctest_regex(names):
    return "^(" + "|".join(n.replace(".", "\\.") for n in names) + ")$"


class Sandbox:
    """Where the tests run. A killed mutation means failing tests, and a failing test leaves
    its /tmp/pmtest.* directories behind (an assertion skips its cleanup); a mutation may even
    break the tests' rule of writing only there. So as root the tests get a private /tmp (a
    mount namespace with a scratch directory bound over /tmp), emptied after each run; and
    $XDG_RUNTIME_DIR points into the scratch directory, where a bare pipe name lands when the
    private runtime directory of the tests is broken (rather than /run/pipemsg)."""

    def __init__(self, scratch):
        self.tmp = os.path.join(scratch, "tmp")
        runtime = os.path.join(scratch, "runtime")
        os.makedirs(runtime, mode=0o700, exist_ok=True)
        self.env = dict(os.environ)
        self.env["XDG_RUNTIME_DIR"] = runtime
        self.private = False
        # The bind mount hides everything under the real /tmp, the scratch copy and its tests
        # too when they live there (a clone in /tmp): then the tests use the real /tmp.
        real = os.path.realpath(scratch)
        under_tmp = real == "/tmp" or real.startswith("/tmp/")
        if os.geteuid() == 0 and shutil.which("unshare") and not under_tmp:
            self.reset()
            rc, _, _ = run(self.wrap(["true"]))
            self.private = rc == 0
        self.note = ("tests see a private /tmp" if self.private else
                     "tests use the real /tmp (a private one needs root, unshare and a scratch "
                     "directory outside /tmp); failing tests may leave /tmp/pmtest.* behind")

    def wrap(self, cmd):
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$1" /tmp && shift && exec "$@"', "sh", self.tmp] + cmd

    def reset(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp, exist_ok=True)
        os.chmod(self.tmp, 0o1777)

    def run(self, cmd, cwd, timeout):
        if not self.private:
            return run(cmd, cwd=cwd, timeout=timeout, env=self.env)
        self.reset()
        try:
            return run(self.wrap(cmd), cwd=cwd, timeout=timeout, env=self.env)
        finally:
            self.reset()


def run_test(build, name, timeout, sandbox):
    """(passed, detail) for one CTest test; the timeout is enforced here, because ctest's
    --timeout does not override a test's own TIMEOUT property."""
    rc, out, timed_out = sandbox.run(["ctest", "-R", ctest_regex([name]), "--output-on-failure",
                                      "--timeout", str(timeout)], build, timeout + 5)
    if timed_out:
        return False, "%s timed out (%d s)" % (name, timeout)
    if re.search(r"\*\*\*Timeout", out):
        return False, "%s timed out (its own TIMEOUT, under %d s)" % (name, timeout)
    if rc != 0:
        return False, "%s failed" % name
    if not re.search(r"100% tests passed, 0 tests failed out of 1\b", out):
        # Not a kill: a test that cannot be found judges nothing.
        raise ListError("%s did not run (ctest found no such test)" % name)
    if re.search(r"\*\*\*Skipped", out):
        return True, "%s skipped itself (as a normal user?), so it judged nothing" % name
    return True, "%s passed" % name


def apply(path, old, new):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    at = occurrences(text, old)
    if len(at) != 1:
        raise ListError("'from' occurs %d times in the scratch copy of %s" % (len(at), path))
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text[:at[0]] + new + text[at[0] + len(old):])
    return text


def restore(path, text):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    # A fresh stamp, newer than the mutated objects, so the next build compiles it again.
    os.utime(path, None)


def fmt_s(seconds):
    return "%.1f s" % seconds


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ci", action="store_true", help="only the entries marked 'ci: yes'")
    ap.add_argument("--only", metavar="ID[,ID]", help="only these entries")
    ap.add_argument("--list", action="store_true",
                    help="check the list and print the selected entries; build nothing")
    ap.add_argument("--build-dir", default="build-mutate",
                    help="scratch directory: DIR/src the copy, DIR/build its build "
                         "(default build-mutate)")
    ap.add_argument("--build-type", default="RelWithDebInfo")
    ap.add_argument("--cmake-flags", default="", help="more cmake arguments, as for make check")
    ap.add_argument("--mutation-dir", default=os.path.join("tests", "mutation"))
    args = ap.parse_args()

    try:
        entries = load(root, args.mutation_dir)
    except ListError as err:
        print("mutate: the mutation list is wrong:\n%s" % err, file=sys.stderr)
        return 2
    selected = entries
    if args.only:
        ids = [i for i in args.only.split(",") if i]
        known = {e.id for e in entries}
        unknown = [i for i in ids if i not in known]
        if unknown:
            print("mutate: no such entry: %s" % ", ".join(unknown), file=sys.stderr)
            return 2
        selected = [e for e in selected if e.id in ids]
    if args.ci:
        selected = [e for e in selected if e.ci]
    if not selected:
        print("mutate: no entry selected", file=sys.stderr)
        return 2
    if args.list:
        for e in selected:
            print("%-45s %-3s %-32s %s" % (e.id, "ci" if e.ci else "", e.file, " ".join(e.tests)))
            print("    %s" % e.why)
        print("%d entries (%d in the CI subset)" % (len(selected), sum(e.ci for e in selected)))
        return 0

    started = time.monotonic()
    scratch = os.path.abspath(os.path.join(root, args.build_dir))
    src, build = os.path.join(scratch, "src"), os.path.join(scratch, "build")
    print("mutate: %d entries; scratch copy in %s" % (len(selected), scratch), flush=True)
    os.makedirs(src, exist_ok=True)
    sync_tree(root, src)
    # Configured every run (quick, and a no-op for the build when nothing changed), so the
    # tests' names below are those of the tree as it is now.
    rc, out, _ = run(["cmake", "-S", src, "-B", build, "-G", "Ninja",
                      "-DCMAKE_BUILD_TYPE=" + args.build_type] + shlex.split(args.cmake_flags))
    if rc != 0:
        print("mutate: cmake failed:\n%s" % tail(out, TEST_LOG_LINES), file=sys.stderr)
        return 2
    try:
        names = ctest_names(build)
    except ListError as err:
        print("mutate: %s" % err, file=sys.stderr)
        return 2
    bad = ["%s: no CTest test named %s" % (e.where("tests"), t)
           for e in selected for t in e.tests if t not in names]
    if bad:
        print("mutate: the mutation list is wrong:\n%s" % "\n".join(bad), file=sys.stderr)
        return 2

    t0 = time.monotonic()
    rc, out, _ = run(["ninja"], cwd=build)
    if rc != 0:
        print("mutate: the unmutated copy does not build:\n%s" % tail(out, TEST_LOG_LINES),
              file=sys.stderr)
        return 2
    print("mutate: built in %s" % fmt_s(time.monotonic() - t0), flush=True)
    try:
        everything = default_targets(build)
    except ListError as err:
        print("mutate: %s" % err, file=sys.stderr)
        return 2

    # A test that fails (or flakes) unmutated cannot judge a mutation.
    t0 = time.monotonic()
    baseline = sorted({t for e in selected for t in e.tests})
    limit = max(e.timeout for e in selected)
    sandbox = Sandbox(scratch)
    rc, out, timed_out = sandbox.run(["ctest", "-j2", "-R", ctest_regex(baseline),
                                      "--output-on-failure"], build, limit * len(baseline))
    if rc != 0 or timed_out:
        print("mutate: the unmutated tests fail; fix them first:\n%s"
              % tail(out, TEST_LOG_LINES), file=sys.stderr)
        return 2
    ran = re.search(r"tests passed, 0 tests failed out of (\d+)", out)
    if ran is None or int(ran.group(1)) != len(baseline):
        print("mutate: ctest ran %s of the %d tests the list names:\n%s"
              % (ran.group(1) if ran else "none", len(baseline), tail(out, TEST_LOG_LINES)),
              file=sys.stderr)
        return 2
    print("mutate: baseline: %d tests pass unmutated (%s); %s"
          % (len(baseline), fmt_s(time.monotonic() - t0), sandbox.note), flush=True)

    results = []  # (entry, outcome, detail, seconds)
    width = max(len(e.id) for e in selected)
    for i, e in enumerate(selected, 1):
        t0 = time.monotonic()
        path = os.path.join(src, e.file)
        original = None
        try:
            original = apply(path, e.old, e.new)
            rc, out, _ = run(["ninja"] + (targets_for(everything, e.tests) or []), cwd=build)
            if rc != 0:
                outcome, detail = "error", "does not compile:\n" + tail(out, BUILD_LOG_LINES)
            else:
                outcome, detail = "survived", "all of %s passed" % " ".join(e.tests)
                skipped = []
                for t in e.tests:
                    ok, why = run_test(build, t, e.timeout, sandbox)
                    if not ok:
                        outcome, detail = "killed", why
                        break
                    if "skipped" in why:
                        skipped.append(why)
                if outcome == "survived" and skipped:
                    detail = "; ".join(skipped)
        except ListError as err:
            outcome, detail = "error", str(err)
        finally:
            if original is not None:
                restore(path, original)
        secs = time.monotonic() - t0
        results.append((e, outcome, detail, secs))
        print("[%*d/%d] %-*s %-8s %7s  %s" % (len(str(len(selected))), i, len(selected), width,
                                               e.id, outcome, fmt_s(secs),
                                               detail.split("\n")[0]), flush=True)

    killed = [r for r in results if r[1] == "killed"]
    survived = [r for r in results if r[1] == "survived"]
    errors = [r for r in results if r[1] == "error"]
    print("\nmutate: %d killed, %d survived, %d in error, of %d entries in %s"
          % (len(killed), len(survived), len(errors), len(results),
             fmt_s(time.monotonic() - started)))
    slow = [e.id for e, _, detail, _ in killed if "timed out" in detail]
    if slow:
        print("killed only by a timeout (a test that waits instead of failing): %s"
              % ", ".join(slow))
    for e, _, _, _ in survived:
        print("SURVIVED %s (%s, in %s): no test of %s checks that\n    %s"
              % (e.id, e.where("id"), e.file, " ".join(e.tests), e.why))
    for e, _, detail, _ in errors:
        print("ERROR %s (%s): %s" % (e.id, e.where("id"), detail))
    if errors:
        return 2
    return 1 if survived else 0


def on_sigterm(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # So that a stopped run still restores the file it mutated (the finally in main).
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
