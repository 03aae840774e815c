"""The `opencrop` command: outputs, JSON shape, exit codes, bad files, batch resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opencrop.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "sub/b.png"):
        a = rng.normal(100, 10, (300, 450, 3)).clip(0, 255).astype(np.uint8)
        a[80:220, 280:380] = (200, 40, 40)
        Image.fromarray(a).save(d / name)
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return d


def test_crop_json_and_outputs(photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    rc = main(["crop", str(photos / "a.jpg"), "-r", "16:9", "-r", "1:1", "--out", str(out), "--json", "--debug"])
    assert rc == 0
    rec = json.loads(capsys.readouterr().out.strip())
    assert rec["image"].endswith("a.jpg") and (rec["width"], rec["height"]) == (450, 300)
    assert [c["ratio"] for c in rec["crops"]] == ["16:9", "1:1"]
    for c in rec["crops"]:
        assert len(c["box"]) == 4 and isinstance(c["score"], float)
        x1, y1, x2, y2 = c["box"]
        assert Image.open(c["output"]).size == (x2 - x1, y2 - y1)
    assert Path(rec["debug"]).is_file()


def test_size_flag_exact(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["crop", str(photos / "a.jpg"), "--size", "160x90", "--out", str(out)]) == 0
    (f,) = out.iterdir()
    assert Image.open(f).size == (160, 90)


def test_bad_file_exit_1_and_others_still_done(photos: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    rc = main(["crop", str(photos / "broken.jpg"), str(photos / "a.jpg"), "--out", str(out), "--json"])
    assert rc == 1
    cap = capsys.readouterr()
    assert "broken.jpg" in cap.err
    assert json.loads(cap.out.strip())["image"].endswith("a.jpg")


@pytest.mark.parametrize("argv", [["crop"], ["crop", "x.jpg", "--ratio", "a:b"], ["crop", "x.jpg", "--size", "9"],
                                  ["crop", "x.jpg", "--debug"], ["nosuchcommand"],
                                  ["crop", "x.jpg", "--size", "320x180", "-r", "1:1"],
                                  ["batch", ".", "-o", "/tmp/never", "--size", "32x18", "-r", "16:9", "-r", "1:1"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    assert rc == 2


def test_batch_continues_and_resumes(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    assert main(["batch", str(photos), "--out", str(out), "-r", "1:1"]) == 1  # one broken file
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in lines) == ["error", "ok", "ok"]
    assert (out / "sub" / "b_1x1.png").is_file() and (out / "a_1x1.jpg").is_file()
    assert main(["batch", str(photos), "--out", str(out), "-r", "1:1", "--resume"]) == 1
    again = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()][len(lines):]
    assert [r["status"] for r in again] == ["error"]  # only the broken file was retried


def test_batch_resume_with_other_ratios_redoes_the_work(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    assert main(["batch", str(photos), "--out", str(out), "-r", "1:1"]) == 1
    n = len((out / "results.jsonl").read_text().splitlines())
    assert main(["batch", str(photos), "--out", str(out), "-r", "16:9", "--resume"]) == 1
    again = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()][n:]
    assert sorted(r["status"] for r in again) == ["error", "ok", "ok"]  # not skipped: a different job
    assert (out / "a_16x9.jpg").is_file()


def test_batch_drops_a_half_written_line_before_appending(photos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "batch"
    assert main(["batch", str(photos), "--out", str(out), "-r", "1:1"]) == 1
    log = out / "results.jsonl"
    whole = log.read_text()
    log.write_text(whole + '{"image": "cut by a kil')  # a crash in the middle of a write
    assert main(["batch", str(photos), "--out", str(out), "-r", "1:1", "--resume"]) == 1
    assert "half-written" in capsys.readouterr().err
    lines = log.read_text().splitlines()
    assert all(json.loads(x) for x in lines)  # every line parses: nothing glued to the cut one
    assert len(lines) == len(whole.splitlines()) + 1  # + the retried broken file


def test_bundled_example_crops() -> None:
    """The README's demo photo crops from the command line."""
    assert main(["crop", str(REPO / "examples" / "astronaut.jpg"), "-r", "9:16"]) == 0


def test_batch_over_odd_images_follows_the_manifest(shared_data: Path, tmp_path: Path) -> None:
    """Every odd file: decodable ones are cropped, rejected ones are logged by name, the batch never stops."""
    manifest = json.loads((shared_data / "odd-images" / "manifest.json").read_text())["files"]
    out = tmp_path / "odd"
    assert main(["batch", str(shared_data / "odd-images"), "--out", str(out), "-r", "16:9", "--no-cues"]) == 1
    recs = {Path(r["image"]).name: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert len(recs) == len(manifest)
    for f in manifest:
        r = recs[f["file"]]
        if f["action"] in ("decode", "rotate"):
            assert r["status"] == "ok", (f["file"], r.get("error"))
            assert Path(r["crops"][0]["output"]).is_file()
        elif f["action"] == "reject":
            assert r["status"] == "error" and f["file"] in r["error"]


def test_default_crop_never_imports_torch(tmp_path: Path) -> None:
    """torch costs ≈ 1 s to import; the default cropper (composition + cues) and the CLI must not need it."""
    import subprocess
    import sys

    argv = ["crop", str(REPO / "examples" / "astronaut.jpg"), "--ratio", "16:9", "--out", str(tmp_path)]
    code = (
        "import sys\n"
        "from opencrop.cli import main\n"
        f"rc = main({argv!r})\n"
        "assert rc == 0, rc\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
    assert (tmp_path / "astronaut_16x9.jpg").is_file()


def test_learned_models_are_listed_without_importing_them() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from opencrop.models import list_models, is_model\n"
        "print(list_models('*ic'), is_model('gafic'), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['gafic', 'gaic', 'hcic'] True False"


def test_limits_from_the_command_line(tmp_path: Path, capsys) -> None:
    photo = str(REPO / "examples" / "astronaut.jpg")
    assert main(["crop", photo, "--size", "30000x30000", "--no-cues"]) == 2  # over the output limit: usage
    assert "output limit" in capsys.readouterr().err
    assert main(["crop", photo, "--max-pixels", "1000", "--no-cues"]) == 1  # this input is too large
    assert "exceeds the limit of 1,000" in capsys.readouterr().err
    assert main(["crop", photo, "--size", "4000x4000", "--no-cues", "--out", str(tmp_path)]) == 1  # upscale
    assert "upscaled" in capsys.readouterr().err and not list(tmp_path.iterdir())
    assert main(["crop", photo, "--size", "800x800", "--allow-upscale", "--no-cues", "--out", str(tmp_path)]) == 0


def _photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).normal(100, 10, (120, 160, 3)).clip(0, 255).astype(np.uint8)
    Image.fromarray(a).save(path)
    return path


def test_colliding_output_names_get_distinct_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _photo(tmp_path / "a" / "x.jpg", 1), _photo(tmp_path / "b" / "x.jpg", 2)
    out = tmp_path / "out"
    assert main(["crop", str(a), str(b), "-r", "16:9", "-r", "16x9", "--out", str(out), "--json", "--no-cues"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    outputs = [c["output"] for r in recs for c in r["crops"]]
    assert len(set(outputs)) == 4 and all(Path(o).is_file() for o in outputs)
    assert [Path(o).name for o in outputs] == ["x_16x9.jpg", "x_16x9-2.jpg", "x_16x9-3.jpg", "x_16x9-4.jpg"]
    assert "renamed_from" not in recs[0]["crops"][0]
    assert [c.get("renamed_from") for c in recs[1]["crops"]] == ["x_16x9.jpg", "x_16x9.jpg"]
    with Image.open(outputs[0]) as first, Image.open(outputs[2]) as third:  # b's crop did not replace a's
        assert np.asarray(first).mean() != np.asarray(third).mean()


def test_batch_names_never_collide(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _photo(src / "x.jpg", 1)
    _photo(src / "x.png", 2)  # same stem, and --format jpg makes the extensions equal
    other = _photo(tmp_path / "elsewhere" / "x.jpg", 3)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{src / 'x.jpg'}\n{other}\n")  # a list file puts both in the output root
    for inp, out in ((src, tmp_path / "o1"), (listing, tmp_path / "o2")):
        assert main(["batch", str(inp), "--out", str(out), "-r", "1:1", "--format", "jpg", "--no-cues"]) == 0
        recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        outputs = [r["crops"][0]["output"] for r in recs]
        assert len(recs) == 2 and len(set(outputs)) == 2 and all(Path(o).is_file() for o in outputs)
        assert sum("renamed_from" in r["crops"][0] for r in recs) == 1
