"""Vision dataset specs: ``name:path?key=value&key=value`` -> the matching reader.

Examples: ``imagenet100:/data/imagenet?split=val``, ``cifar10:/data/cifar?split=test``,
``dtd:/data/dtd?split=val&partition=3``, ``300w:/data/300W?split=test&seed=1``,
``folder:C:\\images\\mine``. Spec syntax and option values are shared with the audio side
(``core.dataspec``); each reader's keyword-only parameters are its options, and an unknown
option is an error listing them. Layouts, options and splits: ``docs/vision_datasets.md``.
"""
from __future__ import annotations

from typing import Callable

from aivision.data.base import ImageDataset
from aivision.data.caltech import read_caltech101
from aivision.data.cifar import read_cifar10, read_cifar100
from aivision.data.cub import read_cub200
from aivision.data.faces import read_300w, read_celeba
from aivision.data.fc100 import read_fc100
from aivision.data.folder import read_folder
from aivision.data.imagenet100 import read_imagenet100
from aivision.data.lsp import read_lsp
from aivision.data.oxford import read_dtd, read_flowers102, read_pets
from aivision.data.plant import read_plant_disease
from core.dataspec import call_reader, check_options
from core.dataspec import parse_spec as core_parse_spec

def read_synthetic_lazy(root: str | None = None, *, n_images: int = 1000, size: int = 64, seed: int = 0,
                        offset: int = 0, label: str = "shape") -> ImageDataset:
    """The procedural images (``aivision.synthetic.read_synthetic``), imported on first use:
    ``aivision.synthetic`` imports ``aivision.data``, so a top-level import would be circular."""
    from aivision.synthetic import read_synthetic

    return read_synthetic(root, n_images=n_images, size=size, seed=seed, offset=offset, label=label)


READERS: dict[str, Callable[..., ImageDataset]] = {
    # pre-training
    "imagenet100": read_imagenet100,
    # many-shot classification (linear readout)
    "cifar10": read_cifar10,
    "cifar100": read_cifar100,
    "flowers102": read_flowers102,
    "dtd": read_dtd,
    "pets": read_pets,
    "caltech101": read_caltech101,
    "cub200": read_cub200,
    # few-shot classification
    "fc100": read_fc100,
    "plant_disease": read_plant_disease,
    # landmark / pose regression
    "300w": read_300w,
    "lsp": read_lsp,
    "celeba": read_celeba,
    # any folder-per-class tree
    "folder": read_folder,
    # built-in procedural images with known factors (aivision.synthetic)
    "synthetic": read_synthetic_lazy,
}


def parse_spec(spec: str) -> tuple[str, str | None, dict]:
    """Split a vision spec into ``(name, path or None, options)``.

    Raises:
        DatasetError: unknown name (lists the available ones) or a malformed option.
    """
    return core_parse_spec(spec, READERS, example="cub200:/data/CUB_200_2011")


def open_image_dataset(spec: str) -> ImageDataset:
    """Open the vision dataset a spec string names.

    Args:
        spec: ``name:path?key=value&...`` (see the module docstring).

    Returns:
        The reader's ``ImageDataset``; ``load(i)`` gives RGB ``uint8`` ``(3, H, W)``.

    Raises:
        DatasetError: unknown dataset or option, bad option value, malformed metadata or no path
            where one is needed (a ``UserError``, also a ``ValueError``; names the spec or file).
        DatasetNotFoundError: a file or folder of the layout is missing (names it and the docs
            section; also a ``FileNotFoundError``).
    """
    name, path, options = parse_spec(spec)
    reader = READERS[name]
    check_options(name, reader, options)
    return call_reader(reader, path, **options)
