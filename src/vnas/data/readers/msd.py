"""Medical Segmentation Decathlon reader (Task06_Lung, Task07_Pancreas), driven by dataset.json.

Quirks of the real release it handles (docs/conventions.md): ``labels`` maps a *string* index to a
name; ``test`` is a list of plain path strings (not dicts like ``training``); the release
key is misspelled ``relase`` (neither spelling is needed); archives carry macOS ``._*``
files next to real ones (never read); case numbers are not contiguous (ids come from the
file names, never from a range). A file listed in ``dataset.json`` but missing is an error
naming it, and so are two entries with one case id (one would silently replace the other,
and the copies could land in train and test of one fold) and an entry outside the task
folder (an absolute path or one climbing out with ``..``) unless ``allow_outside`` says
so. The check is on the path as written: a symlinked file or folder inside the task
folder stays readable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vnas.data.case import Case
from vnas.data.imageio import case_from_images, check_path_name, read_image
from vnas.errors import VNASError


def case_id_of(path: str) -> str:
    """Case id from an MSD path: ``./imagesTr/pancreas_001.nii.gz`` -> ``pancreas_001``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def parse_labels(labels: object, path: Path) -> dict[str, str]:
    """Check MSD ``labels`` (string index -> name) and return it with sorted int keys."""
    if not isinstance(labels, dict) or not labels:
        raise VNASError("'labels' must map class index to name", path)
    try:
        parsed = {int(k): str(v) for k, v in labels.items()}
    except (TypeError, ValueError):
        raise VNASError(f"'labels' keys must be class indices, got {list(labels)}", path) from None
    if 0 not in parsed:
        raise VNASError("'labels' must declare class 0 (background)", path)
    return {str(k): parsed[k] for k in sorted(parsed)}


def listed_path(root: Path, entry: object, index: Path, allow_outside: bool) -> Path:
    """The file a ``dataset.json`` entry names, refused when it lies outside ``root``
    (checked on the path as written, so symlinks inside ``root`` stay readable)."""
    if not isinstance(entry, str):
        raise VNASError(f"training entry path {entry!r} is not a string", index)
    inside = not os.path.isabs(entry) and not os.path.normpath(entry).startswith("..")
    if not inside and not allow_outside:
        raise VNASError(
            f"entry {entry!r} lies outside the dataset folder; move the file into it, or "
            "pass --allow-outside to read it",
            index,
        )
    path = root / entry
    check_path_name(path)
    return path


class MSDReader:
    """Reader for an MSD task folder (the one holding ``dataset.json``).

    Args:
        root: the task folder, e.g. ``Task07_Pancreas``.
        allow_outside: read entries that lie outside ``root`` (absolute or ``..`` paths).
    """

    def __init__(self, root: str | Path, allow_outside: bool = False) -> None:
        self.root = Path(root)
        index = self.root / "dataset.json"
        if not index.is_file():
            raise VNASError("no dataset.json: not an MSD task folder", self.root)
        try:
            info = json.loads(index.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise VNASError(f"invalid JSON: {err}", index) from None
        if not isinstance(info, dict):
            raise VNASError("expected a JSON object", index)
        self.classes = parse_labels(info.get("labels"), index)
        training = info.get("training")
        if not isinstance(training, list) or not training:
            raise VNASError("'training' lists no cases", index)
        self._pairs: dict[str, tuple[Path, Path]] = {}
        for entry in training:
            if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
                raise VNASError(f"training entry {entry!r} needs 'image' and 'label'", index)
            if Path(entry["image"]).name.startswith("._"):
                continue  # a macOS resource fork that slipped into a hand-made index
            image = listed_path(self.root, entry["image"], index, allow_outside)
            label = listed_path(self.root, entry["label"], index, allow_outside)
            for path in (image, label):
                if not path.is_file():
                    raise VNASError("listed in dataset.json but missing", path)
            case_id = case_id_of(entry["image"])
            if case_id in self._pairs:
                raise VNASError(
                    f"case id {case_id!r} is listed twice ({self._pairs[case_id][0]} and "
                    f"{image}); every training image needs its own file name",
                    index,
                )
            self._pairs[case_id] = (image, label)
        # ``test`` holds plain strings in the real release; accept dicts too.
        self.test = [
            case_id_of(t["image"] if isinstance(t, dict) else t) for t in info.get("test", [])
        ]

    def case_ids(self) -> list[str]:
        """Ids of the labelled training cases, sorted."""
        return sorted(self._pairs)

    def paths(self, case_id: str) -> tuple[Path, Path]:
        """Image and label file of a case, as ``dataset.json`` names them."""
        return self._pairs[case_id]

    def load(self, case_id: str) -> Case:
        """Read, check and return one training case."""
        image_path, label_path = self._pairs[case_id]
        image = read_image(image_path)
        label = read_image(label_path)
        classes = [int(k) for k in self.classes]
        return case_from_images(case_id, image, image_path, label, label_path, classes)
