"""vnas export-nnunet keeps the raw folder's unlabelled test images (imagesTs)."""

from __future__ import annotations

from pathlib import Path

from vnas.cli import main


def test_export_keeps_the_test_images(synthetic_dataset: dict, tmp_path: Path) -> None:
    raw = Path(synthetic_dataset["raw"])
    tests = sorted((raw / "imagesTs").glob("*.nii.gz"))
    assert tests  # `vnas synth` writes test images
    out = tmp_path / "Dataset503_Phantom"
    assert main(["export-nnunet", "--raw", str(raw), "--preset", "synthetic-pancreas",
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    copied = sorted((out / "imagesTs").iterdir())
    assert [p.name for p in copied] == [
        p.name.removesuffix(".nii.gz") + "_0000.nii.gz" for p in tests
    ]
    for source, copy in zip(tests, copied, strict=True):
        assert copy.read_bytes() == source.read_bytes()
