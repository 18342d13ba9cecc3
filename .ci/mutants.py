#!/usr/bin/env python3
"""Mutation testing with cargo-mutants, by area: each area is the files whose lines guard one
promise (money, data, continuity) and the tests that judge them, so a mutant is tested by the
tests of its own area instead of the whole suite (five minutes a mutant on two cores).

    python3 .ci/mutants.py list                  the areas, their files and test filters
    python3 .ci/mutants.py run AREA [--budget S] [--iterate] [--sample K/N] [--file F]
                                                 every mutant of an area (--iterate: but the
                                                 ones an earlier run here caught; --sample:
                                                 only every Nth, from the Kth, K from 0;
                                                 --file: only the area's file F)
    python3 .ci/mutants.py diff [BASE] [--budget S]
                                                 the mutants of the lines changed since BASE
                                                 (default HEAD~1), in any area's files

A run mutates the tree in place (`--in-place`, restored by cargo-mutants as it goes; the
incremental build of one mutant takes seconds instead of a fresh copy's minutes) and skips the
baseline test run (the suite is run before, in CI). `--budget` stops it after S seconds: the
mutants not reached are counted as not tested, never as caught; cargo-mutants puts the file
back on its way out. Afterwards every missed mutant must be listed in `.ci/mutants-survivors.txt`
with one line on why it is equivalent or harmless; an unlisted survivor fails (exit 1). The
score (caught and timed out, of the viable mutants) is printed per file.
"""

import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

# Area -> (file globs, arguments of `cargo test` after `--`: the tests that judge them).
AREAS = {
    "execute": (
        ["src/execute/*.rs"],
        ["--workspace", "--", "execute::", "recovery::", "resilience::", "continuity::",
         "render::", "promises::", "hostile::a_200_whose_body_is_not_audio",
         "hostile::a_huge_retry_after", "pronounce::one_dictionary_across_runs"],
    ),
    "state": (
        ["src/state/cache.rs", "src/state/journal.rs", "src/state/mod.rs"],
        ["--workspace", "--", "state::", "recovery::", "hostile::", "render::",
         "continuity::model_limits", "fleet::an_answer_stored_here"],
    ),
    "fleet": (
        ["src/state/shared.rs", "src/state/bucket.rs", "src/manifest/shard.rs",
         "src/commands/fleet.rs"],
        ["--workspace", "--", "manifest::shard", "state::shared", "fleet::"],
    ),
    "plan": (
        ["src/plan/*.rs"],
        ["--workspace", "--", "plan::", "properties::", "continuity::", "render::"],
    ),
    "checks": (
        ["src/output/mod.rs", "src/output/names.rs", "src/files.rs"],
        ["--workspace", "--", "output::", "files::", "hostile::", "surfaces::"],
    ),
    "emulator": (
        ["crates/emulator/src/validate.rs", "crates/emulator/src/rules.rs",
         "crates/emulator/src/format.rs"],
        ["--workspace", "--", "validate", "rules", "format", "emulator::", "oracles::"],
    ),
    "publish": (
        ["src/publish/*.rs", "src/audio/aac.rs", "src/audio/gapless.rs", "src/audio/mp3copy.rs",
         "src/audio/loudness.rs", "src/audio/pcm.rs"],
        ["--workspace", "--", "publish", "aac_spans::", "render::", "oracles::",
         "audio::loudness", "audio::gapless"],
    ),
    "readalong": (
        ["src/output/readalong/clips.rs", "src/output/readalong/wrap.rs"],
        ["--workspace", "--", "readalong", "sample_book::"],
    ),
}

# Seconds a mutant's tests may take before it counts as caught by timeout (a mutant that
# loops): about three times the area's tests on an idle two-core machine, and at least 240,
# as a loaded one takes twice as long (the emulator's own unit tests run last, after the
# integration binary).
TIMEOUTS = {"execute": 300, "plan": 240, "checks": 450, "emulator": 240, "publish": 240,
            "readalong": 420}
DEFAULT_TIMEOUT = 300

# The cargo profile of a whole area's run: the test profile without debug information
# (Cargo.toml), whose incremental build of one mutant links in about a third of the time (9 s
# instead of 22 to 32 on two cores). `diff` keeps the test profile, which CI has just built for
# the suite: a first build of another profile would spend its budget.
RUN_PROFILE = "mutants"


# cargo-nextest, when installed, runs the tests: each test in its own process and the run
# stopped at the first failure (nextest's default `fail-fast`, which lets the tests already
# running finish, so none leaves a server behind), where `cargo test` runs every test of the
# integration binary after one has failed. A caught mutant of `execute` is judged in 17 to 37 s
# instead of 115 to 120. Without it, `cargo test`, with the same filters.
def test_tool():
    return "nextest" if shutil.which("cargo-nextest") else "cargo"


SURVIVORS = ".ci/mutants-survivors.txt"
OUT = "mutants.out"


def listed():
    """The survivors accepted, by file and mutation (line numbers move as code changes)."""
    accepted = set()
    if not os.path.exists(SURVIVORS):
        return accepted
    for line in open(SURVIVORS, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        mutant, _, why = line.partition(" # ")
        if not why.strip():
            sys.exit(f"{SURVIVORS}: {mutant}: no reason given after ' # '")
        accepted.add(key(mutant))
    return accepted


def key(mutant):
    """`src/a.rs:12:5: replace x with y` -> (`src/a.rs`, `replace x with y`)."""
    match = re.match(r"([^:]+):\d+:\d+: (.*)", mutant.strip())
    return (match.group(1), match.group(2)) if match else (mutant.strip(), "")


def run(files, test_args, budget, in_diff=None, iterate=False, sample=None,
        timeout=DEFAULT_TIMEOUT, profile=None):
    # `--workspace`: the emulator is a crate of its own, whose files cargo-mutants only sees
    # (and so mutates) when asked for the whole workspace; `-f` still picks the files.
    cmd = ["cargo", "mutants", "--workspace", "--in-place", "--baseline", "skip",
           "--no-shuffle", "--timeout", str(timeout), "--output", "."]
    if iterate:
        # Skips the mutants an earlier run in this folder caught.
        cmd.append("--iterate")
    else:
        # A run that finds no mutant leaves no output: an earlier run's must not be judged.
        shutil.rmtree(OUT, ignore_errors=True)
    if profile:
        cmd += ["--profile", profile]
    cmd += ["--test-tool", test_tool()]
    if sample:
        # Every Nth mutant in cargo-mutants' order, so a sample spans all the area's files.
        cmd += ["--shard", sample, "--sharding", "round-robin"]
    for f in files:
        cmd += ["-f", f]
    if in_diff:
        cmd += ["--in-diff", in_diff]
    cmd += ["--"] + test_args
    print("+", " ".join(cmd), flush=True)
    # No backtrace of cargo-mutants' own when the budget interrupts it.
    env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
    child = subprocess.Popen(cmd, start_new_session=True, env=env)
    try:
        child.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        print(f"mutants: the budget of {budget} s is spent; the mutants not reached are not tested")
        # SIGINT: cargo-mutants puts the mutated file back before it exits.
        os.killpg(child.pid, signal.SIGINT)
        child.wait()


def outcomes():
    """(file, mutation, summary) of every mutant tested."""
    path = os.path.join(OUT, "outcomes.json")
    if not os.path.exists(path):
        return []
    data = json.load(open(path, encoding="utf-8"))
    rows = []
    for o in data.get("outcomes", []):
        scenario = o.get("scenario")
        if not isinstance(scenario, dict) or "Mutant" not in scenario:
            continue
        m = scenario["Mutant"]
        # `file:line:col: mutation`, as cargo-mutants names it in its lists.
        rows.append((m["file"], m["name"], o.get("summary", "")))
    return rows


def judge():
    """Prints the score per file; the missed mutants not listed as survivors; exit status."""
    rows = outcomes()
    accepted = listed()
    per_file = {}
    unlisted = []
    for file, name, summary in rows:
        caught, viable = per_file.get(file, (0, 0))
        if summary in ("Unviable", "Success"):
            continue
        viable += 1
        if summary in ("CaughtMutant", "Timeout"):
            caught += 1
        elif summary == "MissedMutant" and key(name) not in accepted:
            unlisted.append(name)
        per_file[file] = (caught, viable)
    total_caught = sum(c for c, _ in per_file.values())
    total_viable = sum(v for _, v in per_file.values())
    for file, (caught, viable) in sorted(per_file.items()):
        print(f"  {file}: {caught}/{viable} caught")
    if total_viable:
        print(f"mutants: {total_caught}/{total_viable} viable mutants caught "
              f"({100 * total_caught / total_viable:.0f} %), {len(rows)} tested")
    else:
        print("mutants: no viable mutant tested")
    for name in unlisted:
        print(f"mutants: survivor not listed in {SURVIVORS}: {name}")
    return 1 if unlisted else 0


def diff(base, budget):
    """The mutants of the lines changed since `base`, area by area (each with its own tests),
    within one budget."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", base],
                           capture_output=True, text=True)
    if found.returncode != 0:
        print(f"mutants: {base} is not in this checkout; nothing to compare with")
        return 0
    names = subprocess.run(["git", "diff", "--name-only", base, "--", "src", "crates"],
                           capture_output=True, text=True, check=True).stdout.split()
    patch_text = subprocess.run(["git", "diff", base, "--", "src", "crates"],
                                capture_output=True, text=True, check=True).stdout
    os.makedirs("target", exist_ok=True)
    patch = os.path.join("target", "mutants-diff.patch")
    open(patch, "w", encoding="utf-8").write(patch_text)
    started = time.monotonic()
    status = 0
    ran = False
    for area, (files, tests) in AREAS.items():
        mine = [f for f in files if any(fnmatch.fnmatch(n, f) for n in names)]
        if not mine:
            continue
        left = None if budget is None else budget - (time.monotonic() - started)
        if left is not None and left <= 0:
            print(f"mutants: no budget left for the area {area}")
            break
        print(f"mutants: area {area}: {' '.join(mine)}")
        run(mine, tests, left, in_diff=patch, timeout=TIMEOUTS.get(area, DEFAULT_TIMEOUT))
        status = max(status, judge())
        ran = True
    if not ran:
        print(f"mutants: no line of an area's files changed since {base}")
    return status


def option(argv, name):
    """The value given after `name` (None when it is not given), and `argv` without them."""
    if name not in argv:
        return None, argv
    i = argv.index(name)
    if i + 1 >= len(argv):
        sys.exit(f"mutants: {name} needs a value")
    return argv[i + 1], argv[:i] + argv[i + 2:]


def main(argv):
    if not argv or argv[0] == "list":
        for name, (files, tests) in AREAS.items():
            print(f"{name}: {' '.join(files)}\n    tests: {' '.join(tests)}")
        print(f"test tool: {test_tool()}")
        return 0
    iterate = "--iterate" in argv
    argv = [a for a in argv if a != "--iterate"]
    sample, argv = option(argv, "--sample")
    if sample is not None and (not re.fullmatch(r"\d+/[1-9]\d*", sample)
                               or int(sample.split("/")[0]) >= int(sample.split("/")[1])):
        sys.exit(f"mutants: --sample {sample}: expected K/N with 0 <= K < N")
    budget, argv = option(argv, "--budget")
    budget = None if budget is None else float(budget)
    only, argv = option(argv, "--file")
    if argv[0] == "run" and len(argv) == 2 and argv[1] in AREAS:
        files, tests = AREAS[argv[1]]
        if only is not None:
            if not any(fnmatch.fnmatch(only, f) for f in files):
                sys.exit(f"mutants: --file {only}: not one of the area's files ({' '.join(files)})")
            files = [only]
        run(files, tests, budget, iterate=iterate, sample=sample,
            timeout=TIMEOUTS.get(argv[1], DEFAULT_TIMEOUT), profile=RUN_PROFILE)
        return judge()
    if argv[0] == "diff":
        return diff(argv[1] if len(argv) > 1 else "HEAD~1", budget)
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
