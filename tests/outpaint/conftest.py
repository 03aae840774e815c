"""Puts this folder on sys.path so the tests import the tiny-model builders of ``hf_tiny.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
