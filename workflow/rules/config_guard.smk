# Config files are plain YAML: one that asks for YTE templating is refused before
# Snakemake evaluates it (included by the Snakefile before its `configfile:` line).

import sys
from pathlib import Path

import yaml


def refuse_templated_config(path):
    """Stop with one line if a config file asks Snakemake to evaluate it as a YTE
    template (`__use_yte__` at its top): its `?` expressions would run as Python. vnas
    config files are plain YAML. Checked with yaml.safe_load, before the Snakefile's
    `configfile:` loads params.yaml; a `--configfile` given on the command line is
    loaded by Snakemake before this file runs, so for those this stops the run only
    after the fact (check such a file with `grep __use_yte__` before using it)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        sys.exit(f"vnas: {path}: not a readable YAML config file ({str(err).splitlines()[0]})")
    if isinstance(document, dict) and "__use_yte__" in document:
        sys.exit(
            f"vnas: {path}: holds __use_yte__, which makes Snakemake run its `?` expressions "
            "as Python; vnas config files are plain YAML: remove the key and the expressions"
        )


for _config_path in ["params.yaml", *workflow.config_settings.configfiles]:
    if Path(_config_path).exists():
        refuse_templated_config(_config_path)
