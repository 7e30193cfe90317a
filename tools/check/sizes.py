#!/usr/bin/env python3
"""Lists the files and functions of the libraries' sources that are past the sizes the project
keeps to: a file over 600 lines, a function over 80 (the issue that carved the engine into
folders set them; docs/architecture.md says why a few stay larger).

    python3 tools/check/sizes.py            # every library folder
    python3 tools/check/sizes.py engine/src  # one folder

A function is found by its body: a '{' that closes a line which looks like a signature (has a
'(' and is not a control statement, a class, a namespace or an initialiser), counted to its
matching '}' with strings, characters and comments skipped. Lambdas inside a function count as
part of it. Good enough to find the large ones; not a C++ parser.
"""
import os
import re
import sys

FILE_LIMIT = 600
FUNCTION_LIMIT = 80
ROOTS = ["engine/src", "trainer/src", "presentation/src", "datasets/src", "tools/flowfeed"]
NOT_FUNCTIONS = re.compile(r"^\s*(if|for|while|switch|catch|else|do|namespace|class|struct|enum|"
                           r"union|extern|return|try)\b|=\s*\{?\s*$|\[[^\]]*\]\s*\([^)]*\)\s*(->.*)?\{\s*$")


def strip_code(text):
    """The text with comments, strings and character literals blanked, newlines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j])); i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = ')' + m.group(1) + '"'
            j = text.find(end, i)
            j = n if j < 0 else j + len(end)
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j])); i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (j + 1 - i)); i = j + 1
        else:
            out.append(c); i += 1
    return "".join(out)


def functions(path):
    lines = strip_code(open(path, encoding="utf-8", errors="replace").read()).split("\n")
    found, depth, open_fn = [], 0, []
    for no, line in enumerate(lines, 1):
        for k, ch in enumerate(line):
            if ch == "{":
                head = line[:k].strip() or (lines[no - 2].strip() if no > 1 else "")
                sig = head
                if "(" in sig or sig.startswith(")") or sig.endswith(")") or "const" in sig.split()[-1:]:
                    is_fn = not NOT_FUNCTIONS.search(line[:k + 1]) and not open_fn
                else:
                    is_fn = False
                open_fn.append((depth, no, sig)) if is_fn else None
                depth += 1
            elif ch == "}":
                depth -= 1
                if open_fn and open_fn[-1][0] == depth:
                    _, start, sig = open_fn.pop()
                    found.append((no - start + 1, start, sig))
    return found


def main():
    roots = sys.argv[1:] or ROOTS
    over = 0
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in sorted(names):
                if not name.endswith((".cc", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                n = sum(1 for _ in open(path, encoding="utf-8", errors="replace"))
                if n > FILE_LIMIT:
                    print(f"{path}: {n} lines (file limit {FILE_LIMIT})")
                    over += 1
                for length, start, sig in functions(path):
                    if length > FUNCTION_LIMIT:
                        print(f"{path}:{start}: function of {length} lines: {sig[:70]}")
                        over += 1
    print(f"{over} past the limits")


if __name__ == "__main__":
    main()
