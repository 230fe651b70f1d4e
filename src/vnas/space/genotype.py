"""Architectures as data: the V-NAS search space, the paper's codes and arch JSON files.

The paper codes an architecture as 16 encoder digits grouped by stage (3, 4, 6, 3
cells) and 5 decoder digits, with ``0 = 2D``, ``1 = 3D``, ``2 = P3D`` (docs/conventions.md)::

    encoder "0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0"   decoder "0 0 1 0 1"

The kernels of each choice are defined here once (``ENCODER_KERNELS``,
``DECODER_KERNELS``, in the paper's ``x×y×z`` notation) and turned into torch
kernels by :func:`vnas.space.axes.paper_kernel` where the layers are built.

An architecture spec (``ARCH`` on the command line) is one of:

- a preset: ``nih-paper``, ``lung-paper``, ``pancreas-paper`` (Tables 1–3) or one of the
  9 manual configurations ``manual:<enc>/<dec>`` with ``enc, dec`` in ``2d, 3d, p3d``
  (Tables 4–5): a fixed network;
- ``search``: every cell a softmax-weighted mixture with learnable α (16, 3), β (5, 3);
- ``mix``: the search network with α, β equal and frozen (the paper's "Mix" baseline);
- the path of an arch JSON file (written by the search/aggregation, or drawn by
  ``vnas arch random``): a fixed network built from its ``code``.

:func:`random_genotypes` draws codes uniformly from the whole space (every cell's op
independently and uniformly among the three): the random-architecture baseline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from vnas.errors import VNASError
from vnas.files.atomic import atomic_write_json
from vnas.files.outputs import signed

if TYPE_CHECKING:
    import pandas as pd
from vnas.space.version import NETWORK_VERSION

__all__ = [
    "ARCH_JSON",
    "ARCH_PRESETS",
    "DECODER_KERNELS",
    "ENCODER_KERNELS",
    "ENCODER_STAGES",
    "NUM_DECODER_BLOCKS",
    "NUM_ENCODER_CELLS",
    "NUM_OPS",
    "OP_NAMES",
    "ArchSpec",
    "Genotype",
    "cell_table",
    "op_label",
    "random_genotypes",
    "read_arch_json",
    "resolve_arch",
    "write_arch_json",
    "write_random_archs",
]

ENCODER_STAGES: tuple[int, ...] = (3, 4, 6, 3)
NUM_ENCODER_CELLS = sum(ENCODER_STAGES)  # L = 16
NUM_DECODER_BLOCKS = 5  # B = 5
OP_NAMES: tuple[str, ...] = ("2d", "3d", "p3d")  # digit 0, 1, 2
NUM_OPS = len(OP_NAMES)

# (X, Y) kernels of each choice in paper notation x×y×z (Eq. 1 and Eq. 3).
ENCODER_KERNELS: tuple[tuple[str, str], ...] = (
    ("3x3x1", "1x1x1"),  # E0 2D
    ("3x3x3", "1x1x1"),  # E1 3D
    ("3x3x1", "1x1x3"),  # E2 P3D
)
DECODER_KERNELS: tuple[tuple[str, str], ...] = (
    ("3x3x1", "3x3x1"),  # D0 2D
    ("3x3x3", "3x3x3"),  # D1 3D
    ("3x3x1", "1x1x3"),  # D2 P3D
)


def op_label(part: Literal["encoder", "decoder"], digit: int) -> str:
    """Human-readable op name, e.g. ``op_label("encoder", 2) == "P3D 3x3x1 → 1x1x3"``."""
    kernels = ENCODER_KERNELS if part == "encoder" else DECODER_KERNELS
    x, y = kernels[digit]
    return f"{OP_NAMES[digit].upper()} {x} → {y}"


def _parse_digits(text: str, what: str) -> list[int]:
    digits = []
    for token in text.split():
        if not token.isdigit() or int(token) >= NUM_OPS:
            raise VNASError(
                f"{what} code {text.strip()!r}: {token!r} is not a valid choice "
                f"(digits 0=2d, 1=3d, 2=p3d, separated by spaces)"
            )
        digits.append(int(token))
    return digits


@dataclass(frozen=True)
class Genotype:
    """A discrete V-NAS architecture: one op digit per encoder cell and decoder block.

    Args:
        encoder: 16 digits in 0–2, stage by stage (3, 4, 6, 3 cells).
        decoder: 5 digits in 0–2, decoder block 1 (deepest) to 5.
    """

    encoder: tuple[int, ...]
    decoder: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder", tuple(int(d) for d in self.encoder))
        object.__setattr__(self, "decoder", tuple(int(d) for d in self.decoder))
        if len(self.encoder) != NUM_ENCODER_CELLS:
            raise VNASError(
                f"encoder code has {len(self.encoder)} digits, expected {NUM_ENCODER_CELLS} "
                f"({', '.join(map(str, ENCODER_STAGES))} per stage)"
            )
        if len(self.decoder) != NUM_DECODER_BLOCKS:
            raise VNASError(
                f"decoder code has {len(self.decoder)} digits, expected {NUM_DECODER_BLOCKS}"
            )
        for digit in self.encoder + self.decoder:
            if not 0 <= digit < NUM_OPS:
                raise VNASError(f"architecture digit {digit} is outside 0–2 (0=2d, 1=3d, 2=p3d)")

    @classmethod
    def parse(cls, encoder_code: str, decoder_code: str) -> Genotype:
        """Parse the paper's format: ``"0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0"``, ``"0 0 1 0 1"``.

        Stage groups separated by commas are checked against the 3, 4, 6, 3 cells per
        stage; without commas the 16 digits are read in order.
        """
        groups = encoder_code.split(",")
        if len(groups) > 1:
            if len(groups) != len(ENCODER_STAGES):
                raise VNASError(
                    f"encoder code {encoder_code.strip()!r} has {len(groups)} stage groups, "
                    f"expected {len(ENCODER_STAGES)} with {', '.join(map(str, ENCODER_STAGES))}"
                    " digits"
                )
            encoder: list[int] = []
            for stage, (group, expected) in enumerate(zip(groups, ENCODER_STAGES, strict=True)):
                digits = _parse_digits(group, "encoder")
                if len(digits) != expected:
                    raise VNASError(
                        f"encoder code {encoder_code.strip()!r}: stage {stage + 1} has "
                        f"{len(digits)} digits, expected {expected} "
                        f"({', '.join(map(str, ENCODER_STAGES))} per stage)"
                    )
                encoder += digits
        else:
            encoder = _parse_digits(encoder_code, "encoder")
        if "," in decoder_code:
            raise VNASError(f"decoder code {decoder_code.strip()!r}: expected 5 digits, no commas")
        return cls(tuple(encoder), tuple(_parse_digits(decoder_code, "decoder")))

    @classmethod
    def uniform(cls, encoder_op: int, decoder_op: int) -> Genotype:
        """All encoder cells one op and all decoder blocks one op (Tables 4–5)."""
        return cls((encoder_op,) * NUM_ENCODER_CELLS, (decoder_op,) * NUM_DECODER_BLOCKS)

    @classmethod
    def from_weights(cls, alpha: Any, beta: Any) -> Genotype:
        """Discretise architecture weights (or probabilities) by argmax per cell."""
        a = np.asarray(alpha, dtype=np.float64)
        b = np.asarray(beta, dtype=np.float64)
        _check_shapes(a, b)
        return cls(tuple(a.argmax(axis=1).tolist()), tuple(b.argmax(axis=1).tolist()))

    @property
    def encoder_code(self) -> str:
        """The encoder digits grouped by stage, as the paper prints them."""
        groups, start = [], 0
        for n in ENCODER_STAGES:
            groups.append(" ".join(map(str, self.encoder[start : start + n])))
            start += n
        return ", ".join(groups)

    @property
    def decoder_code(self) -> str:
        """The decoder digits, as the paper prints them."""
        return " ".join(map(str, self.decoder))

    def cells(self) -> Iterator[tuple[str, int, int, int]]:
        """Yield ``(part, stage, index, digit)`` for every cell, encoder then decoder.

        ``stage`` is the encoder stage 1–4 (0 for the decoder); ``index`` counts
        cells from 1 within the encoder stage or decoder.
        """
        start = 0
        for stage, n in enumerate(ENCODER_STAGES, start=1):
            for i in range(n):
                yield "encoder", stage, i + 1, self.encoder[start + i]
            start += n
        for b, digit in enumerate(self.decoder, start=1):
            yield "decoder", 0, b, digit

    @property
    def digits(self) -> tuple[int, ...]:
        """All 21 digits, encoder cells then decoder blocks."""
        return self.encoder + self.decoder

    def __str__(self) -> str:
        return f"encoder {self.encoder_code} | decoder {self.decoder_code}"


def random_genotypes(count: int, seed: int) -> list[Genotype]:
    """``count`` architectures drawn uniformly from the 3^21 codes.

    Sample ``k`` comes from its own generator seeded with ``(seed, k)``, so the first
    samples stay the same when ``count`` grows.
    """
    cells = NUM_ENCODER_CELLS + NUM_DECODER_BLOCKS
    genotypes = []
    for k in range(count):
        digits = np.random.default_rng([int(seed), k]).integers(0, NUM_OPS, size=cells)
        genotypes.append(
            Genotype(tuple(digits[:NUM_ENCODER_CELLS]), tuple(digits[NUM_ENCODER_CELLS:]))
        )
    return genotypes


#: A random code's file name in a folder of random architectures.
SAMPLE_NAME = "sample-{k}.json"
#: log(0) is -inf, which JSON cannot hold: the weight of the ops not drawn.
NOT_DRAWN = -69.0  # softmax gives them about 1e-30


def write_random_archs(folder: Path, count: int, seed: int) -> list[Genotype]:
    """Write :func:`random_genotypes` into ``folder`` (``vnas arch random``, the random
    baseline): one arch JSON per code, ``sample-K.json``, that ``vnas train --arch``
    takes, and ``samples.json`` listing the seed, the codes and the files."""
    genotypes = random_genotypes(count, seed)
    for k, genotype in enumerate(genotypes):
        weights = [np.where(np.eye(NUM_OPS)[list(d)] > 0, 0.0, NOT_DRAWN)
                   for d in (genotype.encoder, genotype.decoder)]  # fmt: skip
        how = {"method": "uniform over the 3^21 codes", "seed": seed, "sample": k}
        write_arch_json(folder / SAMPLE_NAME.format(k=k), *weights, "arch random", {"random": how})
    codes = [{"encoder": g.encoder_code, "decoder": g.decoder_code} for g in genotypes]
    index = {"seed": seed, "samples": count, "codes": codes,
             "files": [SAMPLE_NAME.format(k=k) for k in range(count)]}  # fmt: skip
    atomic_write_json(folder / "samples.json", signed("arch random", index))
    return genotypes


def _manual_presets() -> dict[str, Genotype]:
    return {
        f"manual:{enc}/{dec}": Genotype.uniform(i, j)
        for i, enc in enumerate(OP_NAMES)
        for j, dec in enumerate(OP_NAMES)
    }


# Fixed architectures shipped by name: the paper's searched ones and the 9 manual ones.
ARCH_PRESETS: dict[str, Genotype] = {
    "nih-paper": Genotype.parse("0 0 0, 0 0 0 1, 2 0 2 0 2 2, 0 0 0", "0 0 1 0 1"),
    "lung-paper": Genotype.parse("0 0 0, 1 2 0 1, 2 1 2 0 0 0, 0 0 0", "0 0 2 1 1"),
    "pancreas-paper": Genotype.parse("0 2 2, 2 0 0 0, 2 2 1 2 1 1, 0 1 1", "1 0 2 0 1"),
    **_manual_presets(),
}
MODES = ("search", "mix")


@dataclass(frozen=True)
class ArchSpec:
    """A resolved ``ARCH`` argument.

    Args:
        mode: ``"fixed"`` (one op per cell), ``"search"`` or ``"mix"``.
        genotype: the fixed architecture, ``None`` in search and mix modes.
        name: the spec as given (preset name, mode or JSON path).
    """

    mode: Literal["fixed", "search", "mix"]
    genotype: Genotype | None
    name: str

    @property
    def cells(self) -> Genotype | str:
        """The ``cells`` argument for :class:`vnas.space.network.VNASNet`."""
        return self.genotype if self.genotype is not None else self.mode


def _valid_names() -> str:
    return ", ".join([*ARCH_PRESETS, *MODES]) + " or an arch JSON file"


def resolve_arch(spec: str) -> ArchSpec:
    """Resolve a preset name, ``search``, ``mix``, ``manual:<enc>/<dec>`` or arch JSON path.

    Raises:
        VNASError: for an unknown name or a bad JSON file.
    """
    if spec in MODES:
        return ArchSpec(spec, None, spec)  # type: ignore[arg-type]
    if spec in ARCH_PRESETS:
        return ArchSpec("fixed", ARCH_PRESETS[spec], spec)
    if spec.startswith("manual:"):
        raise VNASError(
            f"unknown manual architecture {spec!r}: expected manual:<enc>/<dec> with enc, dec "
            f"in {', '.join(OP_NAMES)} (e.g. manual:p3d/p3d)"
        )
    if spec.endswith(".json") or Path(spec).is_file():
        record = read_arch_json(spec)
        code = record["code"]
        return ArchSpec("fixed", Genotype.parse(code["encoder"], code["decoder"]), spec)
    raise VNASError(f"unknown architecture {spec!r}: choose one of {_valid_names()}")


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _check_shapes(alpha: np.ndarray, beta: np.ndarray, path: str | Path | None = None) -> None:
    want_a, want_b = (NUM_ENCODER_CELLS, NUM_OPS), (NUM_DECODER_BLOCKS, NUM_OPS)
    if alpha.shape != want_a or beta.shape != want_b:
        raise VNASError(
            f"alpha has shape {alpha.shape} and beta {beta.shape}, "
            f"expected alpha {want_a} and beta {want_b}",
            path,
        )


#: The file name of a search's α, β and code in its folder (:func:`write_arch_json`).
ARCH_JSON = "arch.json"


def write_arch_json(
    path: str | Path,
    alpha: Any,
    beta: Any,
    command: str = "search",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write α, β, their softmax probabilities and the argmax code to ``path`` atomically.

    The record also holds the ``network_version`` (:data:`vnas.space.version.NETWORK_VERSION`)
    of the network whose α, β these are: aggregation refuses searches of another one.

    Args:
        path: the output JSON file.
        alpha: encoder architecture weights, shape (16, 3) (tensor or array-like).
        beta: decoder architecture weights, shape (5, 3).
        command: the vnas command writing it, recorded as the file's signature
            (``written_by``, see :mod:`vnas.files.outputs`).
        extra: more keys to record (e.g. how a random code was drawn).

    Returns:
        The record written (same keys as :func:`read_arch_json`).
    """
    a = np.asarray(_to_numpy(alpha), dtype=np.float64)
    b = np.asarray(_to_numpy(beta), dtype=np.float64)
    _check_shapes(a, b)
    genotype = Genotype.from_weights(a, b)
    record = {
        "alpha": a.tolist(),
        "beta": b.tolist(),
        "alpha_probs": _softmax(a).tolist(),
        "beta_probs": _softmax(b).tolist(),
        "code": {"encoder": genotype.encoder_code, "decoder": genotype.decoder_code},
        "ops": list(OP_NAMES),
        "network_version": NETWORK_VERSION,
        **(extra or {}),
    }
    record = signed(command, record)
    atomic_write_json(path, record)
    return record


def _to_numpy(x: Any) -> Any:
    detach = getattr(x, "detach", None)
    return detach().cpu().numpy() if detach is not None else x


def _weight_pair(
    record: dict, first: str, second: str, path: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """``record[first]`` (16×3) and ``record[second]`` (5×3) as finite float arrays."""
    try:
        a = np.asarray(record[first], dtype=np.float64)
        b = np.asarray(record[second], dtype=np.float64)
    except (TypeError, ValueError):
        raise VNASError(f"'{first}' and '{second}' must be nested lists of numbers", path) from None
    _check_shapes(a, b, path)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise VNASError(f"'{first}' and '{second}' hold NaN or infinite values", path)
    return a, b


def _check_code_matches(
    genotype: Genotype, alpha: np.ndarray, beta: np.ndarray, path: str | Path
) -> None:
    """Raise ``VNASError`` unless every cell's op in ``genotype`` has its row's largest
    weight. Where weights tie (e.g. all zero), any of the tied ops is accepted."""
    for part, digits, weights in (
        ("encoder", genotype.encoder, alpha),
        ("decoder", genotype.decoder, beta),
    ):
        for cell, (digit, row) in enumerate(zip(digits, weights, strict=True)):
            if row[digit] < row.max():
                raise VNASError(
                    f"'code' picks {OP_NAMES[digit]} for {part} cell {cell + 1}, but "
                    f"'{'alpha' if part == 'encoder' else 'beta'}' weights "
                    f"{OP_NAMES[int(row.argmax())]} highest; correct one of them or delete "
                    "'code'",
                    path,
                )


def read_arch_json(path: str | Path) -> dict[str, Any]:
    """Read and validate an arch JSON file.

    Returns:
        A dict with ``alpha`` (16×3 list), ``beta`` (5×3), ``alpha_probs``,
        ``beta_probs`` and ``code = {"encoder": ..., "decoder": ...}``. A missing
        ``code`` or missing probabilities are derived from α, β (argmax, softmax).

    Raises:
        VNASError: naming the file, if it is missing, not JSON, lacks α/β, has wrong
        shapes, NaN or infinite weights, or a malformed code or one that is not the
        argmax of α and β (a hand edit that would otherwise be used silently).
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise VNASError("arch JSON file not found", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VNASError(f"not a readable arch JSON file ({err})", path) from None
    except RecursionError:
        raise VNASError("not a readable arch JSON file (nested too deeply)", path) from None
    if not isinstance(record, dict) or "alpha" not in record or "beta" not in record:
        raise VNASError("arch JSON must be an object with 'alpha' and 'beta'", path)
    a, b = _weight_pair(record, "alpha", "beta", path)
    record.setdefault("alpha_probs", _softmax(a).tolist())
    record.setdefault("beta_probs", _softmax(b).tolist())
    probs = _weight_pair(record, "alpha_probs", "beta_probs", path)
    if min(probs[0].min(), probs[1].min()) < 0:
        raise VNASError("'alpha_probs' and 'beta_probs' must not be negative", path)
    code = record.get("code")
    if code is None:
        genotype = Genotype.from_weights(a, b)
    else:
        if not isinstance(code, dict) or not {"encoder", "decoder"} <= code.keys():
            raise VNASError('\'code\' must be {"encoder": ..., "decoder": ...}', path)
        try:
            genotype = Genotype.parse(str(code["encoder"]), str(code["decoder"]))
        except VNASError as err:
            raise VNASError(str(err), path) from None
        _check_code_matches(genotype, a, b, path)
    record["code"] = {"encoder": genotype.encoder_code, "decoder": genotype.decoder_code}
    return record


def _probabilities(spec: ArchSpec) -> tuple[list | None, list | None]:
    """Per-cell op probabilities where they are known: mix (uniform) or an arch JSON."""
    if spec.mode == "mix":
        uniform = [1.0 / NUM_OPS] * NUM_OPS
        return [uniform] * NUM_ENCODER_CELLS, [uniform] * NUM_DECODER_BLOCKS
    if spec.mode == "fixed" and spec.name not in ARCH_PRESETS:  # an arch JSON file
        record = read_arch_json(spec.name)
        return record["alpha_probs"], record["beta_probs"]
    return None, None


def cell_table(spec: ArchSpec) -> pd.DataFrame:
    """One row per cell: part, stage, cell, op (and op probabilities where known), as
    ``vnas arch show`` prints it."""
    import pandas as pd

    genotype = spec.genotype or Genotype.uniform(0, 0)  # only its layout is used if mixed
    alpha_probs, beta_probs = _probabilities(spec)
    rows: list[dict[str, Any]] = []
    enc = dec = 0
    for part, stage, index, digit in genotype.cells():
        row: dict[str, Any] = {
            "part": part,
            "stage": stage if part == "encoder" else "-",
            "cell": index,
            "op": op_label(part, digit) if spec.genotype else "mixed: 2D + 3D + P3D",
        }
        probs = alpha_probs if part == "encoder" else beta_probs
        if probs is not None:
            for name, p in zip(OP_NAMES, probs[enc if part == "encoder" else dec], strict=True):
                row[f"p({name})"] = round(float(p), 3)
        enc, dec = (enc + 1, dec) if part == "encoder" else (enc, dec + 1)
        rows.append(row)
    return pd.DataFrame(rows)
