"""Amortised invariance learning for contrastive self-supervision (audio first, vision too)."""
from setuptools import find_packages, setup

setup(
    name="amortised-invariance",
    version="0.1.0",
    description="Pre-train one encoder that can be told which augmentations to be invariant to",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["core", "core.*", "aiaudio", "aiaudio.*", "aivision", "aivision.*"]),
    package_data={"aiaudio": ["configs/*.yaml"], "aivision": ["data/imagenet100.txt", "configs/*.yaml"]},
    # Exact pins live in requirements.txt; these are the minimum the code needs.
    install_requires=[
        "torch>=2.14",
        "torchvision>=0.29",
        "torchaudio>=2.11",
        "timm>=1.0",
        "librosa>=0.11",
        "numba>=0.60",
        "audiomentations>=0.43",
        "soundfile>=0.13",
        "pyyaml>=6.0",
        "numpy>=2.0",
        "tqdm>=4.66",
        "tensorboard>=2.17",
        "matplotlib>=3.9",
    ],
    entry_points={
        "console_scripts": [
            "aiaudio=aiaudio.cli:main",
            "aivision=aivision.cli:main",
        ]
    },
)
