"""`dvc plots show` / `dvc plots diff` as a page that works offline.

DVC's own page loads vega, vega-lite and vega-embed from a CDN, so without a network it
stays blank. Its `--html-template` option takes a page with a `{plot_divs}` placeholder
and puts DVC's script tags only where the template has `{scripts}`; this script writes a
template that has no `{scripts}` and carries the three libraries inline instead, taken
from the copies Snakemake ships for its own reports (an installed dependency: vega
5.21, vega-lite 5.2, vega-embed 6.20; DVC's page asks for vega 5.20, vega-lite 5.2 and
vega-embed 6.18), and runs DVC with it:

    python workflow/scripts/dvc_plots.py                  # or `make plots`: dvc_plots/index.html
    python workflow/scripts/dvc_plots.py diff main exp-1  # any `dvc plots` arguments
    python workflow/scripts/dvc_plots.py --write-template .dvc/tmp/offline.html
        # then `dvc config --local plots.html_template tmp/offline.html` makes plain
        # `dvc plots show` offline too (a path relative to .dvc/; both git-ignored)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

LIBRARIES = ("vega/vega.js", "vega-lite/vega-lite.js", "vega-embed/vega-embed.js")

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC plots (offline)</title>
    <!-- vega, vega-lite and vega-embed inline (BSD-3-Clause; the copies shipped with
         Snakemake), so that the page needs no network -->
{scripts}
    <style>
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def template() -> str:
    """The page: DVC's placeholders and the three libraries inline."""
    assets = files("snakemake") / "assets" / "data"
    scripts = []
    for name in LIBRARIES:
        code = (assets / name).read_text(encoding="utf-8")
        # an inline script ends at the first "</script": none may occur inside it
        if "</script" in code.lower():
            raise SystemExit(f"vnas: {name} contains '</script' and cannot be inlined")
        scripts.append(f"    <script>/* {name} */\n{code}\n    </script>")
    return PAGE.format(scripts="\n".join(scripts))


def write_template(path: Path) -> None:
    """Write the template to ``path`` atomically; never over a file it did not write."""
    if path.exists() and "DVC plots (offline)" not in path.read_text(errors="replace")[:400]:
        raise SystemExit(f"vnas: {path} exists and is not a page this script wrote")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(template())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-template", type=Path, metavar="PATH",
                        help="only write the page template to PATH")  # fmt: skip
    parser.add_argument("dvc_args", nargs=argparse.REMAINDER,
                        help="`dvc plots` arguments (default: show)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.write_template:
        write_template(args.write_template)
        print(f"wrote {args.write_template}")
        return 0
    dvc_args = args.dvc_args or ["show"]
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    with tempfile.TemporaryDirectory(prefix="vnas-dvc-plots-") as tmp:
        page = Path(tmp) / "offline.html"
        page.write_text(template(), encoding="utf-8")
        return subprocess.call([dvc, "plots", *dvc_args, "--html-template", str(page)])


if __name__ == "__main__":
    sys.exit(main())
