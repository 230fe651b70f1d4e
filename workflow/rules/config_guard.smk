# Config files are plain YAML: one that asks for YTE templating is refused before
# Snakemake evaluates it (included by the Snakefile before its `configfile:` line).
# The check itself is workflow/scripts/plain_config.py, which `make pipeline` also runs
# on a --configfile before Snakemake loads it.

import importlib.util
import sys
from pathlib import Path


def _plain_config_module():
    """workflow/scripts/plain_config.py, loaded by path (workflow/scripts is no package)."""
    path = Path(workflow.basedir) / "workflow" / "scripts" / "plain_config.py"
    spec = importlib.util.spec_from_file_location("vnas_plain_config", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


# params.yaml before the Snakefile's `configfile:` loads it; a --configfile has been
# loaded by Snakemake already (check it first: `make pipeline CONFIG=FILE`), and this
# stops the run after the fact
_templated_config_error = _plain_config_module().templated_config_error
for _config_path in ["params.yaml", *workflow.config_settings.configfiles]:
    if Path(_config_path).exists() and _templated_config_error(_config_path):
        sys.exit(_templated_config_error(_config_path))
