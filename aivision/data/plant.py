"""Plant Disease (PlantVillage, Mohanty et al. 2016) reader: one folder per crop___disease class.

Published layouts (any of them; ``root`` may also be the class-folder parent itself)::

    <root>/Plant_leave_diseases_dataset_without_augmentation/<class>/*.JPG   Mendeley Data zip
    <root>/Plant_leave_diseases_dataset_with_augmentation/<class>/*.JPG      (its augmented twin)
    <root>/raw/color/<class>/*.JPG or <root>/color/<class>/*.JPG             github.com/spMohanty/PlantVillage-Dataset
    <root>/PlantVillage/<class>/*.JPG                                        common Kaggle re-uploads

Class folders are named like ``Apple___Apple_scab`` (38 crop/disease classes). The Mendeley
zip adds a 39th folder, ``Background_without_leaves``, which is not a plant class and is left
out unless ``background=true``. The paper uses the whole dataset for few-shot episodes, so
there is no split option.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from aivision.data.base import ImageDataset
from aivision.data.folder import nonempty_class_records
from aivision.data.layout import IMAGE_EXTENSIONS, class_folders, docs_ref, require_root

LAYOUT = ("<root>/Plant_leave_diseases_dataset_without_augmentation/<crop>___<disease>/*.JPG "
          "(or raw/color/, color/, PlantVillage/, or <root>/<class>/ directly)")
TOP_FOLDERS = ("Plant_leave_diseases_dataset_without_augmentation", "raw/color", "color", "PlantVillage")
AUGMENTED = "Plant_leave_diseases_dataset_with_augmentation"
BACKGROUND = "Background_without_leaves"


def _class_parent(root: Path, augmented: bool) -> Path:
    if augmented:
        if not (root / AUGMENTED).is_dir():
            raise FileNotFoundError(f"plant_disease: folder {root / AUGMENTED} not found (augmented=true); "
                                    f"expected layout: {LAYOUT} (see {docs_ref('plant_disease')})")
        return root / AUGMENTED
    for name in TOP_FOLDERS:
        if (root / name).is_dir():
            return root / name
    if (root / AUGMENTED).is_dir():
        raise FileNotFoundError(f"plant_disease: {root} holds only {AUGMENTED}; pass augmented=true to read it, "
                                f"or point at the original images (see {docs_ref('plant_disease')})")
    return root


def read_plant_disease(root: str | Path, *, augmented: bool = False, background: bool = False,
                       extensions: Sequence[str] | str = IMAGE_EXTENSIONS) -> ImageDataset:
    """Read PlantVillage.

    Args:
        root: folder holding one of the published top folders, or the class folders directly.
        augmented: read ``Plant_leave_diseases_dataset_with_augmentation`` (Mendeley's
            offline-augmented copy) instead of the original images.
        background: keep the ``Background_without_leaves`` class.
        extensions: image extensions to include (case-insensitive).

    Returns:
        ``ImageDataset`` with classes sorted by folder name and ``meta = {"relpath"}``.
    """
    root = require_root(root, "plant_disease", LAYOUT)
    extensions = [extensions] if isinstance(extensions, str) else list(extensions)
    base = _class_parent(root, augmented)
    names = [c for c in class_folders(base) if background or c != BACKGROUND]
    classes, records = nonempty_class_records(base, names, extensions, recursive=False)
    if not classes:
        raise FileNotFoundError(f"plant_disease: no class folders with images under {base}; expected layout: "
                                f"{LAYOUT} (see {docs_ref('plant_disease')})")
    return ImageDataset("plant_disease", records, classes, base)
