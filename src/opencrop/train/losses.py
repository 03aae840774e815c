"""Moved to :mod:`opencrop.nn.losses` (models must not import :mod:`opencrop.train`); re-exported here."""

from opencrop.nn import losses as _moved
from opencrop.nn.losses import *  # noqa: F403

__all__ = list(_moved.__all__)
