#!/usr/bin/env python3
"""Every relative link in the project's Markdown (README.md, CONTRIBUTING.md, docs/*.md)
resolves: the file or folder exists, and a `#fragment` names a heading of the target, slugged
as GitHub slugs headings. Outside links (http, https, mailto) are not followed.

Run from the repository root: `python3 .ci/links.py` (exit 1 with each broken link listed).
"""

import os
import re
import sys


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[`*_]", "", s)
    s = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def headings(path):
    out, fence = set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def links(path):
    fence = False
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        for m in re.finditer(r"\]\(([^)\s]+)\)", line):
            yield n, m.group(1)


def main():
    files = ["README.md", "CONTRIBUTING.md"] + sorted(
        os.path.join("docs", f) for f in os.listdir("docs") if f.endswith(".md")
    )
    broken, count = [], 0
    for f in files:
        for n, target in links(f):
            if re.match(r"^[a-z]+:", target):
                continue
            count += 1
            path, _, fragment = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
            if not os.path.exists(dest):
                broken.append(f"{f}:{n}: {target}: no such file")
            elif fragment and dest.endswith(".md") and fragment not in headings(dest):
                broken.append(f"{f}:{n}: {target}: no heading #{fragment} in {dest}")
    for b in broken:
        print(f"links: {b}", file=sys.stderr)
    if broken:
        sys.exit(1)
    print(f"links: {count} relative links in {len(files)} files, all resolve")


if __name__ == "__main__":
    main()
