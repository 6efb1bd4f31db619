"""Vision datasets: readers for the published layouts, the image dataset contract, spec strings.

``open_image_dataset("cub200:/data/CUB_200_2011?split=test")`` returns an ``ImageDataset``
whose ``load(i)`` is an RGB ``uint8`` ``(3, H, W)`` tensor; regression sets (300W, LSP, CelebA)
carry normalised landmark targets ``(N, T)``. Layouts: ``docs/vision_datasets.md``.
"""
from aivision.data.arrays import ArrayImageDataset
from aivision.data.base import BadImageError, ImageDataset, ImageRecord, decode_image
from aivision.data.caltech import read_caltech101
from aivision.data.cifar import read_cifar10, read_cifar100
from aivision.data.cub import read_cub200
from aivision.data.faces import read_300w, read_celeba, read_pts
from aivision.data.fc100 import read_fc100
from aivision.data.folder import read_folder
from aivision.data.imagenet100 import read_class_list, read_imagenet100
from aivision.data.lsp import read_lsp
from aivision.data.oxford import read_dtd, read_flowers102, read_pets
from aivision.data.plant import read_plant_disease
from aivision.data.registry import READERS, open_image_dataset, parse_spec
from aivision.data.splits import grouped_split, per_class_split, split_sizes

__all__ = [
    "ImageDataset", "ImageRecord", "ArrayImageDataset", "BadImageError", "decode_image",
    "READERS", "open_image_dataset", "parse_spec",
    "read_imagenet100", "read_class_list", "read_cifar10", "read_cifar100", "read_flowers102", "read_dtd",
    "read_pets", "read_caltech101", "read_cub200", "read_fc100", "read_plant_disease", "read_300w",
    "read_lsp", "read_celeba", "read_pts", "read_folder", "split_sizes", "grouped_split", "per_class_split",
]
