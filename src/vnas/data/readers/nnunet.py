"""nnU-Net v2 raw dataset reader (``DatasetXXX_Name`` folders), the field's exchange format.

``dataset.json`` has ``channel_names`` (one CT channel is supported), ``labels`` mapping
*name -> index* (the reverse of MSD), ``file_ending`` and ``numTraining``. Images are
``imagesTr/<case><channel suffix _0000><file_ending>``, labels ``labelsTr/<case><file_ending>``.
There is no case list: cases are found by listing ``imagesTr`` (macOS ``._*`` files ignored).
"""

from __future__ import annotations

import json
from pathlib import Path

from vnas.data.case import Case
from vnas.data.imageio import case_from_images, read_image
from vnas.errors import VNASError

CHANNEL_SUFFIX = "_0000"


def parse_nnunet_labels(labels: object, path: Path) -> dict[str, str]:
    """nnU-Net ``labels`` (name -> index) as vnas classes (string index -> name)."""
    if not isinstance(labels, dict) or not labels:
        raise VNASError("'labels' must map class name to index", path)
    classes: dict[int, str] = {}
    for name, index in labels.items():
        if not isinstance(index, int) or isinstance(index, bool):
            raise VNASError(
                f"label {name!r} maps to {index!r}; region-based labels are not supported", path
            )
        classes[index] = str(name)
    if 0 not in classes:
        raise VNASError("'labels' must declare 'background': 0", path)
    return {str(k): classes[k] for k in sorted(classes)}


class NnUNetReader:
    """Reader for an nnU-Net v2 raw dataset folder.

    Args:
        root: the ``DatasetXXX_Name`` folder holding ``dataset.json``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        index = self.root / "dataset.json"
        if not index.is_file():
            raise VNASError("no dataset.json: not an nnU-Net raw dataset folder", self.root)
        try:
            info = json.loads(index.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise VNASError(f"invalid JSON: {err}", index) from None
        channels = info.get("channel_names") if isinstance(info, dict) else None
        if not isinstance(channels, dict) or len(channels) != 1:
            raise VNASError(
                f"expected exactly one channel in 'channel_names', got {channels!r}", index
            )
        self.classes = parse_nnunet_labels(info.get("labels"), index)
        self.file_ending = str(info.get("file_ending", ".nii.gz"))
        images_dir = self.root / "imagesTr"
        if not images_dir.is_dir():
            raise VNASError("no imagesTr folder", self.root)
        suffix = CHANNEL_SUFFIX + self.file_ending
        self._ids = sorted(
            p.name[: -len(suffix)]
            for p in images_dir.iterdir()
            if p.name.endswith(suffix) and not p.name.startswith(".")
        )
        if not self._ids:
            raise VNASError(f"no *{suffix} images", images_dir)
        declared = info.get("numTraining")
        if isinstance(declared, int) and declared != len(self._ids):
            raise VNASError(
                f"numTraining is {declared} but imagesTr holds {len(self._ids)} images", index
            )

    def case_ids(self) -> list[str]:
        """Ids of the training cases, sorted."""
        return list(self._ids)

    def paths(self, case_id: str) -> tuple[Path, Path]:
        """Image and label file of a case."""
        image = self.root / "imagesTr" / f"{case_id}{CHANNEL_SUFFIX}{self.file_ending}"
        label = self.root / "labelsTr" / f"{case_id}{self.file_ending}"
        return image, label

    def load(self, case_id: str) -> Case:
        """Read, check and return one training case."""
        image_path, label_path = self.paths(case_id)
        if not label_path.is_file():
            raise VNASError("label file missing for this image", label_path)
        image = read_image(image_path)
        label = read_image(label_path)
        classes = [int(k) for k in self.classes]
        return case_from_images(case_id, image, image_path, label, label_path, classes)
