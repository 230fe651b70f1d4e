"""Refuse a config file that Snakemake would evaluate as a YTE template.

Snakemake loads a YAML config file through YTE, and a file holding `__use_yte__: true`
at its top has its `?` expressions run as Python. vnas config files are plain YAML, so
such a file is refused, read here with `yaml.safe_load` (which evaluates nothing):

- the Snakefile runs the check (workflow/rules/config_guard.smk) on params.yaml before its
  `configfile:` line loads it;
- Snakemake loads a `--configfile` given on its command line before the Snakefile's first
  line runs (snakemake/settings/types.py, `ConfigSettings._get_overwrite_config`), and
  offers no hook before that, so `make pipeline CONFIG=FILE` runs this script on the
  file first, then Snakemake:

    python workflow/scripts/plain_config.py FILE...   # exit 1 with one line if one is not
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def templated_config_error(path: str | Path) -> str | None:
    """The one line refusing ``path``, or None if it is plain YAML (or JSON) that asks
    for no templating. Unreadable YAML is refused too: Snakemake's own loader would try
    it as a template."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        return f"vnas: {path}: not a readable YAML config file ({str(err).splitlines()[0]})"
    if isinstance(document, dict) and "__use_yte__" in document:
        return (
            f"vnas: {path}: holds __use_yte__, which makes Snakemake run its `?` expressions "
            "as Python; vnas config files are plain YAML: remove the key and the expressions"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("vnas: name a config file: make pipeline CONFIG=FILE TARGET=...", file=sys.stderr)
        return 1
    for path in paths:
        error = templated_config_error(path)
        if error:
            print(error, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
