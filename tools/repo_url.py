"""Write the repository address of _config.yml into the first cell of every chapter.

The address is one setting, `repository: url:` in _config.yml. The book's launch buttons read it
from there; a notebook opened on Colab cannot, so its first cell carries a copy, which this script
keeps equal to the setting (tests/test_first_cell.py fails when they differ). A fork edits the
setting and runs `make repo-url`.

    python tools/repo_url.py           # rewrite the first cells from _config.yml
    python tools/repo_url.py --check   # exit 1 if any first cell differs
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL = re.compile(r'%pip install -q "git\+[^"]*"')


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    """`repository: url:` of the Jupyter Book configuration (read without a YAML parser)."""
    match = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", config.read_text(), re.M)
    if not match:
        raise SystemExit(f"{config} has no 'repository: url:' setting")
    return match.group(1).strip("'\"").rstrip("/")


def install_line(url: str) -> str:
    return f'%pip install -q "git+{url}"'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report differences, change nothing")
    args = parser.parse_args()
    want, stale = install_line(repository_url()), []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text()
        nb = json.loads(text)
        cell = "".join(nb["cells"][0]["source"])
        if not INSTALL.search(cell):
            raise SystemExit(f"{path.name}: the first cell has no '%pip install -q \"git+...\"' line")
        new = INSTALL.sub(want.replace("\\", "\\\\"), cell)
        if new == cell:
            continue
        stale.append(path.name)
        if not args.check:
            lines = new.split("\n")
            nb["cells"][0]["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    verb = "differ from" if args.check else "updated to"
    print(f"{len(stale)} first cell(s) {verb} {want}" + (f": {', '.join(stale)}" if stale else ""))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
