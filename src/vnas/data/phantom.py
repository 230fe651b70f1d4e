"""A synthetic CT *phantom*: made-up anatomy for tests, demos and CPU-sized experiments.

This is not patient data and not a physical simulation. It draws a few analytic shapes
with plausible Hounsfield units so that the whole pipeline (readers, preprocessing,
search, training, evaluation) can run without downloading anything. Numbers measured on
it say nothing about the paper's results on real CT.

Every volume is generated in the project's array convention ``(D, H, W) = (z, y, x)`` in
LPS orientation (x towards the patient's left, y posterior, z superior). Geometry is defined
in millimetres around the volume centre and scaled by the in-plane half field of view, so a
smaller ``shape`` gives the same anatomy at lower resolution; the through-plane spacing
(2.5 mm) is coarser than the in-plane one (about 0.8 mm, jittered per case).

Contents (HU values before noise):

- body: an ellipse with a subcutaneous fat ring (-100) and a muscle ring (50) around
  visceral fat (-70); air (-1000) outside;
- spine (cortex 700, body 250) and aorta (160) running through all slices;
- ``pancreas``/``nih``: liver (60) with hypodense cysts (15), two contrast-enhanced
  kidneys (150), and the pancreas (45): a thin tube that curves *in-plane* from head to tail
  and rises along z over several slices. ``pancreas`` adds one or two hypodense tumours
  (label 2, about 15 HU) inside it; ``nih`` labels only the pancreas;
- ``lung``: two air-filled lungs (-850) around a heart (40), lung vessels (35) and one to
  three nodules (label 1, about 0 HU, spheres of 2-5 mm radius).
- ``tubes``: the known-answer phantom (EXPERIMENTS.md): in the body, two to six short
  tubes of soft tissue (45 HU), each either straight along z or tilted (its centre moves
  0.4 mm in-plane per mm of z, i.e. 1 mm per slice, in a random direction), and either
  round (radius 3 mm) or elongated (an ellipse of the same area, 4.5 × 2 mm, randomly
  oriented). Some are targets (label 1), the rest decoys. ``cue`` says which attribute
  tells them apart: ``through-plane``, targets tilted and decoys straight, their
  cross-sections drawn at random (every slice of a target looks like a slice of a
  decoy: only neighbouring slices tell them apart); ``in-plane``, the control, targets
  round and decoys elongated, their tilt drawn at random. The two variants draw the same
  random numbers, so a case differs between them only in which attribute carries the
  label. Both cues survive the training augmentation (90° rotations and flips change a
  tilt's direction, not its size, and a shape's orientation, not its elongation).

Why a 2D view is not enough: each target has decoys with the *same* HU and the same
in-plane look, which differ from it only along z.

- Pancreas: "bowel loops" are curved tubes like the pancreas, with its HU and thickness,
  but only 1-2 slices thick; "veins" are tubes of the same HU running through-plane, whose
  round cross-sections look like the tapering ends of the pancreas. In a single axial slice
  a pancreas section and a bowel section are indistinguishable; only the neighbouring
  slices tell them apart. Liver cysts have the HU of tumours but sit outside the pancreas.
- Lung: vessels are long tubes running mostly through-plane, so in one slice a vessel is a
  small round blob of soft-tissue HU, just like a nodule; a nodule is a sphere that ends
  after a few slices, a vessel continues.

Randomness: one ``numpy.random.Generator`` per case, seeded from ``(seed, case number)``,
so a case does not depend on how many other cases are generated. Generation is vectorised
(broadcast coordinate grids) and takes a fraction of a second for the default
``(48, 96, 96)`` volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

KINDS = ("pancreas", "lung", "nih", "tubes")
#: What tells a target from its decoys in the ``tubes`` phantom (module docstring).
CUES = ("through-plane", "in-plane")
DEFAULT_SHAPE = (48, 96, 96)  # (D, H, W) = (z, y, x)
SLICE_SPACING = 2.5  # mm, through-plane
INPLANE_SPACING = 0.8  # mm, jittered by +-10 % per case
NOISE_HU = 12.0

AIR, FAT, VISCERAL_FAT, MUSCLE = -1000.0, -100.0, -70.0, 50.0
PANCREAS_HU = 45.0


@dataclass
class Phantom:
    """One generated case.

    Attributes:
        image: HU values, float32 ``(D, H, W)``.
        label: uint8 ``(D, H, W)``; classes depend on the kind (see ``classes``).
        spacing: ``(sz, sy, sx)`` in mm.
    """

    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]


def classes(kind: str) -> dict[str, str]:
    """Class index (as a string, MSD style) to name for a phantom kind."""
    if kind == "pancreas":
        return {"0": "background", "1": "pancreas", "2": "cancer"}
    if kind == "lung":
        return {"0": "background", "1": "cancer"}
    if kind == "nih":
        return {"0": "background", "1": "pancreas"}
    if kind == "tubes":
        return {"0": "background", "1": "target"}
    raise ValueError(f"unknown phantom kind {kind!r}; choose one of {KINDS}")


class _Grid:
    """Broadcastable physical coordinates, in units of the in-plane half field of view."""

    def __init__(self, shape: tuple[int, int, int], spacing: tuple[float, float, float]):
        d, h, w = shape
        sz, sy, sx = spacing
        self.scale = min(h * sy, w * sx) / 2.0  # mm per unit
        self.z = ((np.arange(d) - (d - 1) / 2) * sz / self.scale).reshape(d, 1, 1)
        self.y = ((np.arange(h) - (h - 1) / 2) * sy / self.scale).reshape(1, h, 1)
        self.x = ((np.arange(w) - (w - 1) / 2) * sx / self.scale).reshape(1, 1, w)
        self.z_half = float(d * sz / self.scale / 2)
        self.slice = sz / self.scale  # one slice, in units
        self.shape = shape

    def ellipsoid(self, centre, radii) -> np.ndarray:
        """Boolean mask of an axis-aligned ellipsoid; ``centre``/``radii`` are (x, y, z)."""
        (cx, cy, cz), (rx, ry, rz) = centre, radii
        return ((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2 + (
            (self.z - cz) / rz
        ) ** 2 <= 1.0

    def z_tube(self, centre, tilt, radius, z_range) -> np.ndarray:
        """A tube of round cross-section running along z, tilted by ``tilt`` (dx/dz, dy/dz)."""
        cx = centre[0] + tilt[0] * self.z
        cy = centre[1] + tilt[1] * self.z
        inside = (self.x - cx) ** 2 + (self.y - cy) ** 2 <= radius**2
        return inside & (self.z >= z_range[0]) & (self.z <= z_range[1])

    def arc_tube(self, x_range, y0, bow, z0, rise, r_in, r_thick) -> np.ndarray:
        """A tube following a curve that bends in-plane and rises along z.

        The centreline is ``y(t) = y0 - bow * 4t(1-t)`` (an arc bulging anteriorly) and
        ``z(t) = z0 + rise * t`` for ``x = x0 + t (x1 - x0)``, ``t`` in [0, 1]. The
        cross-section is an ellipse of in-plane radius ``r_in(t)`` (linear from
        ``r_in[0]`` to ``r_in[1]``) and through-plane radius ``r_thick``.
        """
        x0, x1 = x_range
        t = (self.x - x0) / (x1 - x0)
        yc = y0 - bow * 4.0 * t * (1.0 - t)
        zc = z0 + rise * t
        r = r_in[0] + (r_in[1] - r_in[0]) * np.clip(t, 0, 1)
        inside = ((self.y - yc) / r) ** 2 + ((self.z - zc) / r_thick) ** 2 <= 1.0
        return inside & (t >= 0) & (t <= 1)

    def tilted_tube(self, centre, tilt, radii, angle, half_length) -> np.ndarray:
        """A tube of elliptical cross-section whose centre moves in-plane along z.

        ``centre`` (x, y, z); ``tilt`` (dx/dz, dy/dz); ``radii`` (a, b) of the ellipse,
        its ``a`` axis at ``angle`` (radians) from x; ``half_length`` along z. Every
        axial slice of it is the same ellipse, shifted.
        """
        cx, cy, cz = centre
        dz = self.z - cz
        u, v = self.x - cx - tilt[0] * dz, self.y - cy - tilt[1] * dz
        c, s = np.cos(angle), np.sin(angle)
        a, b = radii
        inside = ((c * u + s * v) / a) ** 2 + ((-s * u + c * v) / b) ** 2 <= 1.0
        return inside & (np.abs(dz) <= half_length)

    def centreline(self, x_range, y0, bow, z0, rise, t: float) -> tuple[float, float, float]:
        """Point (x, y, z) at parameter ``t`` on an ``arc_tube`` centreline."""
        x = x_range[0] + t * (x_range[1] - x_range[0])
        return x, y0 - bow * 4.0 * t * (1.0 - t), z0 + rise * t


def _body(g: _Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """HU volume of the body wall, visceral fat, spine and aorta; and the inner mask."""
    ax, ay = rng.uniform(0.80, 0.92), rng.uniform(0.62, 0.74)
    cx, cy = rng.uniform(-0.04, 0.04), rng.uniform(-0.04, 0.04)
    taper = 1.0 + 0.04 * g.z / max(g.z_half, 1e-6)  # slightly wider cranially
    r = np.sqrt(((g.x - cx) / (ax * taper)) ** 2 + ((g.y - cy) / (ay * taper)) ** 2)
    image = np.full(g.shape, AIR, dtype=np.float32)
    image[np.broadcast_to(r <= 1.0, g.shape)] = FAT
    image[np.broadcast_to(r <= 0.90, g.shape)] = MUSCLE
    inner = np.broadcast_to(r <= 0.83, g.shape)
    image[inner] = VISCERAL_FAT
    spine_c = (cx + rng.uniform(-0.03, 0.03), cy + ay * 0.62)
    spine = g.z_tube(spine_c, (0.0, 0.0), 0.14, (-np.inf, np.inf))
    image[spine] = 700.0
    image[g.z_tube(spine_c, (0.0, 0.0), 0.10, (-np.inf, np.inf))] = 250.0
    aorta_c = (spine_c[0] + 0.13, spine_c[1] - 0.24)
    image[g.z_tube(aorta_c, (0.0, 0.0), 0.065, (-np.inf, np.inf))] = 160.0
    return image, inner


def _abdomen(g: _Grid, rng: np.random.Generator, with_tumours: bool):
    """Pancreas phantom: organs, the pancreas, its decoys, optional tumours."""
    image, inner = _body(g, rng)
    label = np.zeros(g.shape, dtype=np.uint8)
    zh = g.z_half
    # liver (patient's right = low x), kidneys (posterior), with small jitter
    liver_c = (rng.uniform(-0.50, -0.40), rng.uniform(-0.20, -0.05), rng.uniform(0.2, 0.5) * zh)
    liver = g.ellipsoid(liver_c, (0.34, 0.40, 0.9 * zh)) & inner
    image[liver] = 60.0
    for _ in range(rng.integers(0, 3)):  # hypodense liver cysts: tumour HU, not tumour
        c = (liver_c[0] + rng.uniform(-0.15, 0.15), liver_c[1] + rng.uniform(-0.15, 0.15))
        cz = liver_c[2] + rng.uniform(-0.4, 0.4) * zh
        rad = rng.uniform(0.05, 0.09)
        image[g.ellipsoid((*c, cz), (rad, rad, rad)) & liver] = 15.0
    for side in (-1, 1):
        kc = (side * rng.uniform(0.36, 0.42), rng.uniform(0.22, 0.32), rng.uniform(-0.3, 0.0) * zh)
        image[g.ellipsoid(kc, (0.12, 0.17, 0.45 * zh)) & inner] = 150.0

    # the pancreas: head at the patient's right, tail rising towards the left
    x_range = (rng.uniform(-0.38, -0.25), rng.uniform(0.30, 0.45))
    y0, bow = rng.uniform(0.02, 0.12), rng.uniform(0.05, 0.20)
    z0 = rng.uniform(-0.35, 0.05) * zh
    rise = rng.uniform(0.15, 0.35) * zh
    r_in = (rng.uniform(0.07, 0.09), rng.uniform(0.04, 0.055))
    r_thick = rng.uniform(3.0, 4.5) * g.slice
    shape_args = (x_range, y0, bow, z0, rise)

    # decoys first, so that the pancreas is drawn over any overlap
    for _ in range(rng.integers(6, 10)):  # bowel loops: pancreas look, 1-2 slices thick
        bx0 = rng.uniform(-0.6, 0.2)
        bx = (bx0, bx0 + rng.uniform(0.25, 0.5))
        by = rng.uniform(-0.45, 0.3)
        bz = rng.uniform(-0.9, 0.9) * zh
        thick = rng.uniform(0.6, 1.0) * g.slice
        b_in = (rng.uniform(0.05, 0.09), rng.uniform(0.04, 0.07))
        bowel = g.arc_tube(bx, by, rng.uniform(-0.15, 0.15), bz, 0.0, b_in, thick)
        image[bowel & inner] = PANCREAS_HU
    for _ in range(rng.integers(2, 4)):  # veins: pancreas HU, running through-plane
        vc = (rng.uniform(-0.4, 0.4), rng.uniform(-0.35, 0.3))
        vz0 = rng.uniform(-0.9, 0.3) * zh
        vein = g.z_tube(
            vc, rng.uniform(-0.1, 0.1, 2), rng.uniform(0.04, 0.06), (vz0, vz0 + 0.8 * zh)
        )
        image[vein & inner] = PANCREAS_HU

    pancreas = g.arc_tube(x_range, y0, bow, z0, rise, r_in, r_thick) & inner
    image[pancreas] = PANCREAS_HU
    label[pancreas] = 1
    if with_tumours:
        for _ in range(rng.integers(1, 3)):
            t = rng.uniform(0.15, 0.8)
            centre = g.centreline(*shape_args, t)
            local_r = r_in[0] + (r_in[1] - r_in[0]) * t
            rad = local_r * rng.uniform(1.0, 1.5)
            tumour = g.ellipsoid(centre, (rad, rad, rad)) & inner
            image[tumour] = PANCREAS_HU - rng.uniform(25.0, 35.0)
            label[tumour] = 2
    return image, label


def _thorax(g: _Grid, rng: np.random.Generator):
    """Lung phantom: lungs, heart, vessels and nodules."""
    image, inner = _body(g, rng)
    label = np.zeros(g.shape, dtype=np.uint8)
    zh = g.z_half
    lungs = np.zeros(g.shape, dtype=bool)
    for side in (-1, 1):
        c = (side * rng.uniform(0.38, 0.46), rng.uniform(-0.05, 0.05), rng.uniform(-0.1, 0.1) * zh)
        lungs |= g.ellipsoid(c, (rng.uniform(0.3, 0.36), rng.uniform(0.45, 0.52), 1.3 * zh))
    lungs &= inner
    image[lungs] = -850.0
    heart_c = (rng.uniform(0.0, 0.1), rng.uniform(-0.2, -0.1), rng.uniform(-0.6, -0.2) * zh)
    image[g.ellipsoid(heart_c, (0.24, 0.22, 0.5 * zh)) & inner] = 40.0
    vessels = np.zeros(g.shape, dtype=bool)
    for _ in range(rng.integers(8, 13)):  # long, mostly through-plane tubes
        side = rng.choice([-1, 1])
        vc = (side * rng.uniform(0.25, 0.6), rng.uniform(-0.35, 0.35))
        vz0 = rng.uniform(-1.0, 0.0) * zh
        vessels |= g.z_tube(
            vc, rng.uniform(-0.15, 0.15, 2), rng.uniform(0.04, 0.09), (vz0, vz0 + zh)
        )
    image[vessels & lungs] = 35.0
    # nodules: spheres well inside a lung, away from the vessels' HU only by their shape
    candidates = np.argwhere(lungs[:, ::4, ::4]) * [1, 4, 4]
    for _ in range(rng.integers(1, 4)):
        rad_mm = rng.uniform(2.0, 5.0)
        rad = rad_mm / g.scale
        zi, yi, xi = candidates[rng.integers(len(candidates))]
        centre = (float(g.x[0, 0, xi]), float(g.y[0, yi, 0]), float(g.z[zi, 0, 0]))
        nodule = g.ellipsoid(centre, (rad, rad, rad)) & inner
        image[nodule] = rng.uniform(-20.0, 20.0)
        label[nodule] = 1
    return image, label


TUBE_HU = 45.0
TUBE_RADIUS_MM = 3.0  # round cross-section
TUBE_ELLIPSE_MM = (4.5, 2.0)  # elongated cross-section, the same area
TUBE_TILT = 0.4  # in-plane shift per through-plane distance (1 mm per 2.5 mm slice)
TUBE_HALF_LENGTH_MM = (7.5, 12.5)  # 6 to 10 slices long


def _tubes(g: _Grid, rng: np.random.Generator, cue: str):
    """The known-answer phantom (module docstring): targets and decoys told apart by
    ``cue`` alone.

    Both cues draw the same random numbers, and each tube is placed by its envelope (the
    straight cylinder that holds it whether tilted or not, round or not), so a case has
    its tubes in the same places under both cues.
    """
    if cue not in CUES:
        raise ValueError(f"unknown cue {cue!r}; choose one of {CUES}")
    image, inner = _body(g, rng)
    label = np.zeros(g.shape, dtype=np.uint8)
    occupied = image > 100.0  # spine and aorta
    n_targets, n_decoys = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    mm = 1.0 / g.scale
    for target in rng.permutation([True] * n_targets + [False] * n_decoys):
        nuisance = bool(rng.integers(2))  # the attribute that carries no label
        tilted, round_ = (target, nuisance) if cue == "through-plane" else (nuisance, target)
        direction = rng.uniform(0.0, 2.0 * np.pi)
        angle = rng.uniform(0.0, np.pi)
        half_length_mm = rng.uniform(*TUBE_HALF_LENGTH_MM)
        hu = TUBE_HU + rng.normal(0.0, 5.0)
        reach_mm = max(TUBE_ELLIPSE_MM[0], TUBE_RADIUS_MM) + TUBE_TILT * half_length_mm
        span = max(g.z_half - half_length_mm * mm, 0.0)
        candidates = np.column_stack(
            [rng.uniform(-0.55, 0.55, 100), rng.uniform(-0.45, 0.35, 100),
             rng.uniform(-span, span, 100)]
        )  # fmt: skip
        half_length = half_length_mm * mm
        for centre in candidates:
            envelope = g.z_tube(
                centre[:2], (0, 0), reach_mm * mm, centre[2] + np.array([-1, 1]) * half_length
            )
            # clear of the others by 3 mm in-plane and 5 mm (two slices) along z
            grown = g.z_tube(
                centre[:2],
                (0, 0),
                (reach_mm + 3) * mm,
                centre[2] + np.array([-1, 1]) * (half_length + 5 * mm),
            )
            if envelope.any() and not (envelope & ~inner).any() and not (grown & occupied).any():
                break
        else:
            continue  # no room: one tube fewer (the same under both cues)
        occupied |= grown
        radii = (TUBE_RADIUS_MM,) * 2 if round_ else TUBE_ELLIPSE_MM
        tilt = TUBE_TILT * np.array([np.cos(direction), np.sin(direction)]) * tilted
        tube = g.tilted_tube(centre, tilt, (radii[0] * mm, radii[1] * mm), angle, half_length)
        image[tube] = hu
        label[tube] = 1 if target else 0
    return image, label


def make_phantom(
    kind: str,
    seed: int,
    number: int,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    noise: bool = True,
    cue: str = "through-plane",
) -> Phantom:
    """Generate one phantom case.

    Args:
        kind: ``"pancreas"``, ``"lung"`` or ``"nih"``.
        seed: dataset seed.
        number: case number; with ``seed`` it fully determines the case.
        shape: ``(D, H, W)`` in voxels.
        noise: add the blur and Gaussian noise (off: the clean piecewise-constant HU map).
        cue: ``tubes`` only: what tells targets from decoys (``through-plane`` or
            ``in-plane``, module docstring).

    Returns:
        The :class:`Phantom` with HU image, label and spacing.
    """
    classes(kind)  # validates kind
    if min(shape) < 4:
        raise ValueError(f"phantom shape {shape} is too small (at least 4 voxels per axis)")
    rng = np.random.default_rng([int(seed), int(number), KINDS.index(kind)])
    sxy = round(INPLANE_SPACING * rng.uniform(0.9, 1.1), 3)
    spacing = (SLICE_SPACING, sxy, sxy)
    g = _Grid(tuple(int(s) for s in shape), spacing)
    if kind == "lung":
        image, label = _thorax(g, rng)
    elif kind == "tubes":
        image, label = _tubes(g, rng, cue)
    else:
        image, label = _abdomen(g, rng, with_tumours=kind == "pancreas")
    if noise:
        # partial-volume blur (mostly in-plane: thick slices already average along z), noise
        image = gaussian_filter(image, sigma=(0.3, 0.7, 0.7), mode="nearest")
        image += rng.normal(0.0, NOISE_HU, size=image.shape).astype(np.float32)
    return Phantom(image=image.astype(np.float32), label=label, spacing=spacing)
