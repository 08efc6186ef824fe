#!/usr/bin/env python3
"""Checks the links of the repository's Markdown files (python3 >= 3.9, standard library only).

For every git-tracked *.md file (`git ls-files '*.md'`; outside a git checkout, every *.md file
of the tree but build*/ and .toolchain/):
  - every relative link and image (`[text](path)`, `![alt](path)`, `[label]: path`, and the
    `href`/`src` of HTML tags) must name a file or folder of the repository, and an `#anchor` in
    a Markdown file (`docs/api.md#bad-input`, or `#anchor` in the same file) must be one of its
    headings' anchors, computed as GitHub does (lowercase; punctuation but `-` and `_` removed;
    spaces become `-`; repeated headings get `-1`, `-2`, ...; headings in fenced code blocks do
    not count), or an `<a id=...>`/`<a name=...>`;
  - links inside code spans and fenced code blocks are not links; http(s), mailto and other
    scheme links are not checked;
  - every file under docs/ must be reachable from README.md by following links (the README's
    document map).
Prints each problem as `file:line: target (why)` and exits 1 if there is any, else 0.
Run from anywhere: it checks the repository that contains it. docs/testing.md describes it.
"""

import os
import re
import subprocess
import sys
import urllib.parse
from collections import deque

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# [text](target "title") and ![alt](target): one level of brackets in the text, one level of
# parentheses in the target.
INLINE = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>\n]*>|[^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFDEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>\n]*>|\S+)", re.M)
HTMLATTR = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I)
HTMLID = re.compile(r"<a\b[^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']*)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def tracked_files():
    """The repository's files (relative paths, '/'-separated) and its Markdown files."""
    try:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], check=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
        files = [f for f in out.decode("utf-8").split("\0") if f]
        if files:
            return set(files)
    except (OSError, subprocess.CalledProcessError):
        pass
    files = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames
                       if not (d.startswith("build") or d in (".git", ".toolchain", ".venv"))]
        for name in filenames:
            files.add(os.path.relpath(os.path.join(dirpath, name), ROOT).replace(os.sep, "/"))
    return files


def mask_code(text):
    """The text with fenced code blocks and code spans blanked out (newlines kept), and the lines
    that are not inside a fenced block (for the headings)."""
    lines = text.split("\n")
    out, prose = [], []
    fence = None
    for line in lines:
        m = FENCE.match(line)
        if fence is None:
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                fence = m.group(1)
                out.append("")
                prose.append(False)
                continue
            out.append(line)
            prose.append(True)
        else:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
                fence = None
            out.append("")
            prose.append(False)
    masked = "\n".join(out)
    # Code spans: a run of n backticks up to the next run of exactly n backticks.
    result, i = [], 0
    runs = list(re.finditer(r"`+", masked))
    k = 0
    while k < len(runs):
        opening = runs[k]
        closing = None
        for j in range(k + 1, len(runs)):
            if len(runs[j].group(0)) == len(opening.group(0)):
                closing = j
                break
        if closing is None:
            k += 1
            continue
        end = runs[closing].end()
        result.append(masked[i:opening.start()])
        result.append(re.sub(r"[^\n]", " ", masked[opening.start():end]))
        i = end
        k = closing + 1
    result.append(masked[i:])
    return "".join(result), lines, prose


def heading_text(raw):
    """A heading's text as GitHub renders it (inline markup removed)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)   # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)                       # HTML tags
    text = text.replace("`", "").replace("*", "")
    return text.strip()


def slug(text):
    text = heading_text(text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(text):
    masked, lines, prose = mask_code(text)
    anchors, seen = set(), {}

    def add(base):
        n = seen.get(base, 0)
        anchors.add(base if n == 0 else "%s-%d" % (base, n))
        seen[base] = n + 1

    for idx, line in enumerate(lines):
        if not prose[idx]:
            continue
        m = ATX.match(line)
        if m and not line.startswith("    "):
            add(slug(m.group(2) or ""))
            continue
        if idx > 0 and prose[idx - 1] and SETEXT.match(line):
            prev = lines[idx - 1]
            if prev.strip() and not ATX.match(prev) and not prev.lstrip().startswith(("|", "-", "*", ">")) \
                    and not SETEXT.match(prev):
                add(slug(prev))
    for m in HTMLID.finditer(masked):
        anchors.add(m.group(1))
    return anchors


def links_of(text):
    """(line, target) of every link in the text, code excluded."""
    masked, _, _ = mask_code(text)
    found = []
    for regex in (INLINE, REFDEF, HTMLATTR):
        for m in regex.finditer(masked):
            target = m.group(1).strip()
            if target.startswith("<") and target.endswith(">"):
                target = target[1:-1]
            found.append((masked.count("\n", 0, m.start()) + 1, target))
    found.sort()
    return found


def main():
    files = tracked_files()
    dirs = set()
    for f in files:
        parts = f.split("/")
        for n in range(1, len(parts)):
            dirs.add("/".join(parts[:n]))
    markdown = sorted(f for f in files if f.endswith(".md") and os.path.isfile(os.path.join(ROOT, f)))
    texts = {}
    for f in markdown:
        with open(os.path.join(ROOT, f), encoding="utf-8") as fh:
            texts[f] = fh.read()
    anchor_cache = {}

    def anchors(path):
        if path not in anchor_cache:
            anchor_cache[path] = anchors_of(texts[path])
        return anchor_cache[path]

    problems = []
    edges = {f: set() for f in markdown}
    for f in markdown:
        base = os.path.dirname(f)
        for line, target in links_of(texts[f]):
            if not target or SCHEME.match(target) or target.startswith("//"):
                continue
            path, _, anchor = target.partition("#")
            path = urllib.parse.unquote(path.split("?", 1)[0])
            anchor = urllib.parse.unquote(anchor)
            if path:
                if path.startswith("/"):
                    resolved = os.path.normpath(path.lstrip("/"))
                else:
                    resolved = os.path.normpath(os.path.join(base, path))
                resolved = resolved.replace(os.sep, "/")
                if resolved == "." :
                    resolved = ""
                if resolved.startswith("../") or resolved == "..":
                    problems.append((f, line, target, "outside the repository"))
                    continue
                if resolved not in files and resolved not in dirs and resolved != "":
                    why = "not in the repository" if not os.path.exists(os.path.join(ROOT, resolved)) \
                        else "not tracked by git"
                    problems.append((f, line, target, why))
                    continue
            else:
                resolved = f
            if resolved in dirs or resolved == "":
                readme = (resolved + "/README.md").lstrip("/")
                if readme in texts:
                    edges[f].add(readme)
                if anchor:
                    if readme in texts and anchor in anchors(readme):
                        continue
                    problems.append((f, line, target, "anchor of a folder"))
                continue
            edges[f].add(resolved)
            if anchor and resolved.endswith(".md"):
                if resolved not in texts:
                    problems.append((f, line, target, "no such Markdown file"))
                elif anchor not in anchors(resolved):
                    problems.append((f, line, target, "no heading with anchor #%s in %s" % (anchor, resolved)))

    # Every file under docs/ is reachable from README.md.
    if "README.md" in texts:
        reached, queue = {"README.md"}, deque(["README.md"])
        while queue:
            for nxt in edges.get(queue.popleft(), ()):
                if nxt not in reached:
                    reached.add(nxt)
                    if nxt in edges:
                        queue.append(nxt)
        for f in sorted(files):
            if f.startswith("docs/") and f not in reached:
                problems.append((f, 1, f, "not reachable from README.md by following links"))
    else:
        problems.append(("README.md", 1, "README.md", "missing"))

    for f, line, target, why in problems:
        print("%s:%d: %s (%s)" % (f, line, target, why))
    if problems:
        print("check_links: %d broken link(s) in %d Markdown files" % (len(problems), len(markdown)))
        return 1
    print("check_links: %d Markdown files, every relative link and anchor resolves" % len(markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
