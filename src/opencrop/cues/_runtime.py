"""Lazy, once-per-process, thread-safe backend loading, and the notes recorded when a backend is unavailable."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from opencrop.errors import ModelFileError, OpenCropError

__all__ = ["BackendUnavailable", "Lazy", "has_module", "note_once"]

log = logging.getLogger("opencrop.cues")
T = TypeVar("T")

_NOTED: set[str] = set()
_NOTED_LOCK = threading.Lock()


class BackendUnavailable(OpenCropError):
    """A cue backend cannot run here: its Python runtime is not installed or its model file is missing/corrupt."""


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def note_once(note: str) -> bool:
    """Log ``note`` as a warning the first time it is seen in this process; True if it was new."""
    with _NOTED_LOCK:
        if note in _NOTED:
            return False
        _NOTED.add(note)
    log.warning("%s", note)
    return True


class Lazy(Generic[T]):
    """A value built on first use by ``factory``, at most once per process, under a lock.

    A failure (:class:`BackendUnavailable`) is remembered too, so a missing backend costs one attempt, not one per
    image. ``lock`` serialises inference on the built object (tflite interpreters and cv2.dnn nets are not
    thread-safe).
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._error: BackendUnavailable | None = None
        self._build_lock = threading.Lock()
        self.lock = threading.Lock()

    def get(self) -> T:
        if self._value is not None:
            return self._value
        with self._build_lock:
            if self._value is None and self._error is None:
                try:
                    self._value = self._factory()
                except BackendUnavailable as e:
                    self._error = e
                except (ModelFileError, OSError) as e:
                    self._error = BackendUnavailable(str(e))
            if self._error is not None:
                raise self._error
            assert self._value is not None
            return self._value

    def reset(self) -> None:
        """Forget the built value or failure (tests, or after ``opencrop models fetch``)."""
        with self._build_lock:
            self._value = None
            self._error = None


def tflite_interpreter(path: str, num_threads: int = 2):
    """An allocated ``ai_edge_litert`` interpreter for ``path`` (TensorFlow-free TFLite runtime)."""
    if not has_module("ai_edge_litert"):
        raise BackendUnavailable("ai-edge-litert is not installed (pip install ai-edge-litert; opencrop depends on it)")
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ai_edge_litert.interpreter import Interpreter

    with _quiet_native_stderr():  # the runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate" to fd 2
        it = Interpreter(model_path=str(path), num_threads=num_threads)
        it.allocate_tensors()
    return it


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what native code writes to file descriptor 2 (Python-level errors still raise normally)."""
    import os
    import sys

    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (pytest capture, embedded): nothing to hide
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
