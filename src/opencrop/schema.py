"""The versioned JSON schema of opencrop's result records: ``opencrop crop --json`` lines, ``results.jsonl`` of
``opencrop batch``, and the service's JSON answers. Every record carries ``"schema": SCHEMA_ID``.

Version 1 (this file) describes every key; a change that removes or retypes a key bumps the version. Boxes are
``[x1, y1, x2, y2]`` integer pixels of the upright original image (EXIF orientation applied). ``opencrop schema``
prints it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA", "SCHEMA_ID", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
SCHEMA_ID = f"opencrop.result/{SCHEMA_VERSION}"

_BOX = {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4,
        "description": "x1, y1, x2, y2: integer pixels of the upright original, x1 < x2, y1 < y2"}

_CROP: dict[str, Any] = {
    "type": "object",
    "required": ["ratio", "box", "score"],
    "additionalProperties": False,
    "properties": {
        "ratio": {"type": "string", "description": "the requested ratio as given (\"16:9\", \"1.91\", \"4x5\")"},
        "box": _BOX,
        "score": {"type": "number", "description": "model score; comparable between crops of one image and model"},
        "warning": {"type": "string", "description": "the box's aspect differs from the ratio by more than 1 % (an "
                    "extreme ratio whole pixels of this image cannot make)"},
        "output": {"type": ["string", "null"], "description": "CLI / batch: the file written, null without --out"},
        "renamed_from": {"type": "string", "description": "CLI / batch: the output name this file would have had, "
                         "taken by an earlier output of the same run"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": f"opencrop result record, version {SCHEMA_VERSION}",
    "type": "object",
    "required": ["schema"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_ID, "description": "this schema's id"},
        "image": {"type": "string", "description": "the input as named (path; absent in service answers)"},
        "width": {"type": "integer", "minimum": 1, "description": "upright original width, pixels"},
        "height": {"type": "integer", "minimum": 1, "description": "upright original height, pixels"},
        "crops": {"type": "array", "items": _CROP, "description": "one per requested ratio, in request order"},
        "degraded": {"type": "array", "items": {"type": "string"},
                     "description": "cues that could not run (only with --degrade): faces, people, objects, "
                     "person_mask"},
        "notes": {"type": "array", "items": {"type": "string"},
                  "description": "what the pipeline had to report: degraded cues, random weights, multi-frame or "
                  "transparent input, a default ratio (service)"},
        "debug": {"type": "string", "description": "CLI --debug: the overlay PNG written"},
        "model": {"type": "string", "description": "service: the model that answered"},
        "status": {"enum": ["ok", "error"], "description": "batch: this input's outcome"},
        "error": {"type": "string", "description": "batch: the problem, naming the file (status error)"},
        "ms": {"type": "number", "minimum": 0, "description": "batch: milliseconds spent on this input"},
        "job": {"type": "string", "description": "batch: the job key (ratios, size, model, weights, format, "
                "quality) that --resume compares"},
    },
    "allOf": [
        {"if": {"properties": {"status": {"const": "error"}}, "required": ["status"]},
         "then": {"required": ["image", "error"]},
         "else": {"required": ["width", "height", "crops"]}},
    ],
}
