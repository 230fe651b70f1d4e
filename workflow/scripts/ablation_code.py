"""Write the arch JSON of one ablation code of the second known-answer experiment.

Usage: ablation_code.py CODE OUT. α holds a logit of 20 on the chosen op, so that its
probability prints as 1 (EXPERIMENTS.md, Known answer 2, amendment A3).
"""

import sys

import numpy as np

from vnas.report.truth_table import group_code
from vnas.space.genotype import NUM_OPS, write_arch_json


def main(code: str, out: str) -> None:
    encoder, decoder = group_code(code)
    write_arch_json(
        out,
        20 * np.eye(NUM_OPS)[encoder],
        20 * np.eye(NUM_OPS)[decoder],
        command="experiment ablation-code",
        extra={"ablation": code},
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
