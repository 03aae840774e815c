"""Every record opencrop prints or writes validates against the versioned schema (opencrop.schema), and the
schema is strict: an unknown key or a wrong type fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opencrop.cli import main
from opencrop.schema import SCHEMA, SCHEMA_ID

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (dev extra) validates the records")
REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "examples" / "astronaut.jpg"
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_the_schema_is_valid_and_strict() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    good = {"schema": SCHEMA_ID, "width": 4, "height": 3, "crops": [{"ratio": "1:1", "box": [0, 0, 3, 3],
                                                                    "score": 0.5}]}
    VALIDATOR.validate(good)
    for bad in ({**good, "surprise": 1}, {**good, "width": "4"}, {**good, "schema": "opencrop.result/0"},
                {**good, "crops": [{"ratio": "1:1", "box": [0, 0, 3], "score": 0.5}]},
                {"schema": SCHEMA_ID, "status": "error"}):
        assert not VALIDATOR.is_valid(bad), bad


def test_cli_and_batch_records_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["crop", str(PHOTO), "-r", "16:9", "-r", "1000:1", "--json", "--out", str(out), "--debug"]) == 0
    VALIDATOR.validate(json.loads(capsys.readouterr().out))
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes(PHOTO.read_bytes())
    (src / "bad.jpg").write_bytes(b"\xff\xd8\xffnot a jpeg")
    assert main(["batch", str(src), "--out", str(out), "-r", "1:1"]) == 1
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["status"] for r in recs} == {"ok", "error"}
    for r in recs:
        VALIDATOR.validate(r)


def test_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["$id"] == SCHEMA_ID
