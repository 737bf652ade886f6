#!/bin/sh
# make coverage: runs the whole suite in a build made with PM_COVERAGE (--coverage), then prints
# line and branch coverage for src/, service/ and cli/, each file with its uncovered lines.
# The counters start from zero on every run; pipemsgd children write theirs when they exit
# (SIGTERM ends them through main), and gcc merges the .gcda files of parallel tests under a
# lock. The HTML report with every line: BUILD/coverage/index.html.
set -u
build=${1:-build-coverage}
find "$build" -name '*.gcda' -delete
(cd "$build" && ctest --output-on-failure -j2)
tests_rc=$?
gcovr -r . --object-directory "$build" --json "$build/coverage.json" || exit 1
mkdir -p "$build/coverage"
gcovr -r . -a "$build/coverage.json" -f src/ -f service/ -f cli/ \
  --html-details "$build/coverage/index.html" || exit 1

python3 - "$build/coverage.json" <<'EOF'
import json
import sys

# Counted as gcovr counts: lines that are code and not excluded; every branch of those lines.
files = {}
for f in json.load(open(sys.argv[1]))["files"]:
    lines = [l for l in f["lines"] if not l["gcovr/noncode"] and not l["gcovr/excluded"]]
    files[f["file"]] = lines

def ranges(nums):
    out, start, prev = [], None, None
    for n in nums:
        if start is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(out)

def pct(a, b):
    return f"{100.0 * a / b:5.1f}%" if b else "   - "

totals = []
for top in ("src/", "service/", "cli/"):
    names = sorted(n for n in files if n.startswith(top))
    tl = tlc = tb = tbc = 0
    print(f"\n{'file':<34} {'lines':>16} {'branches':>16}  uncovered lines")
    for n in names:
        lines = files[n]
        lc = sum(1 for l in lines if l["count"] > 0)
        br = [b for l in lines for b in l["branches"]]
        bc = sum(1 for b in br if b["count"] > 0)
        missed = ranges([l["line_number"] for l in lines if l["count"] == 0])
        print(f"{n:<34} {pct(lc, len(lines))} {lc:4}/{len(lines):<4} "
              f"{pct(bc, len(br))} {bc:4}/{len(br):<4}  {missed}")
        tl += len(lines); tlc += lc; tb += len(br); tbc += bc
    print(f"{top + ' total':<34} {pct(tlc, tl)} {tlc:4}/{tl:<4} {pct(tbc, tb)} {tbc:4}/{tb:<4}")
    totals.append((top, tlc, tl, tbc, tb))

print(f"\n{'':<10} {'lines':>16} {'branches':>16}")
for top, tlc, tl, tbc, tb in totals:
    print(f"{top:<10} {pct(tlc, tl)} {tlc:4}/{tl:<4} {pct(tbc, tb)} {tbc:4}/{tb:<4}")
print("goal (src/, service/): lines >= 95%, branches >= 85%")
EOF
echo "coverage: per-line report in $build/coverage/index.html"
if [ "$tests_rc" -ne 0 ]; then
  echo "coverage: some tests failed (see above); the figures miss what they did not run" >&2
  exit 1
fi
