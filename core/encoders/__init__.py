"""Encoders: the abstract :class:`InvarianceEncoder` and the registered architectures.

The registry lives in :mod:`core.encoders.registry`; import names from :mod:`core`.
"""
from core.encoders.base import DescriptorGroups, InvarianceEncoder, group_descriptors

__all__ = ["DescriptorGroups", "InvarianceEncoder", "group_descriptors"]
