"""benchmarks/synth_noise_ceiling.py: the replay of write_gaicd's random stream and the noise-free ceiling."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import synth_noise_ceiling as snc

from opencrop.data.synth import write_gaicd


def test_replay_reproduces_the_written_files_and_a_wrong_seed_is_refused(tmp_path, capsys) -> None:
    write_gaicd(tmp_path, n=6, seed=3)
    rows = snc.replay(6, 3)
    assert [r[0] for r in rows] == ["train"] * 4 + ["test"] * 2
    for split, name, _boxes, q, mos in rows:
        ann = np.loadtxt(tmp_path / "annotations" / split / f"{name}.txt", ndmin=2)
        np.testing.assert_allclose(ann[:, 4], mos)
        assert np.isneginf(q[mos == -2.0]).all() and np.isfinite(q[mos != -2.0]).all()
    assert snc.main(["--data", str(tmp_path), "--n", "6", "--seed", "3", "--k", "90"]) == 0
    assert "| all | 6 | 100.0 |" in capsys.readouterr().out  # every valid crop in the top 90: always a hit
    with pytest.raises(SystemExit, match="differs from the replay"):
        snc.main(["--data", str(tmp_path), "--n", "6", "--seed", "4"])


def test_hit_counts_the_best_crop_within_the_top_k() -> None:
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 9.5]], float)
    mos = np.array([1.0, 5.0, 2.0])
    assert snc.hit(boxes, np.array([3.0, 2.0, 1.0]), mos, k=2)
    assert not snc.hit(boxes, np.array([3.0, 1.0, 2.0]), mos, k=2)  # the 9.5-high twin of crop 0 is not the best
    assert snc.hit(boxes, np.array([3.0, 1.0, 2.0]), mos, k=3)
