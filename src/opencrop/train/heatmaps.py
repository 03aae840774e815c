"""Moved to :mod:`opencrop.data.heatmaps` (``opencrop data heatmaps``); re-exported here."""

from opencrop.data import heatmaps as _moved
from opencrop.data.heatmaps import *  # noqa: F403

__all__ = list(_moved.__all__)
