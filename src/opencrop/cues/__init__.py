"""Content cues: faces, people, objects, saliency."""

from opencrop.cues.types import Cues, Detections

__all__ = ["Cues", "Detections"]
