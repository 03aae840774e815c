"""Request parameters → CropJob, and the settings' own checks (no server)."""

from __future__ import annotations

import pytest

from opencrop.serve.params import PARAMETERS, RequestError, parse_params
from opencrop.serve.settings import ServeSettings

MODELS = ("composition", "baseline-center")


def _parse(*items: tuple[str, str], fmt: str | None = None):
    return parse_params(list(items), MODELS, max_output_pixels=10_000_000, max_ratios=4, format=fmt)


def test_repeated_and_comma_separated_ratios_keep_their_order() -> None:
    job = _parse(("ratio", "16:9"), ("ratio", "1:1,4:5"))
    assert job.ratios == ("16:9", "1:1", "4:5")
    assert (job.model, job.format, job.size, job.notes) == ("composition", "json", None, ())


def test_defaults_say_what_they_chose() -> None:
    assert _parse().ratios == ("1:1",)
    assert _parse().notes == ("no ratio given: cropped to 1:1",)
    job = _parse(("size", "1280x720"))
    assert (job.ratios, job.size, job.notes) == (("1280:720",), (1280, 720), ())


def test_every_field_parsed() -> None:
    job = _parse(("ratio", "4:5"), ("size", "400x500"), ("model", "baseline-center"), ("subject", "1,2,30,40"),
                 ("subject", "5,5,9,9"), ("focus", "12.5,7"), ("format", "JPG"), ("quality", "70"))
    assert job.subject == ((1, 2, 30, 40), (5, 5, 9, 9))
    assert (job.focus, job.format, job.quality, job.model) == ((12.5, 7), "jpeg", 70, "baseline-center")


@pytest.mark.parametrize(("items", "needle"), [
    ([("ratios", "16:9")], "unknown parameter 'ratios'"),
    ([("ratio", "x:y")], "bad aspect ratio 'x:y'"),
    ([("ratio", "0:1")], "bad aspect ratio"),
    ([("ratio", "1:1,2:1,3:1,4:1,5:1")], "at most 4"),
    ([("size", "big")], "bad size 'big'"),
    ([("size", "0x10")], "both sides must be at least 1 pixel"),
    ([("size", "5000x5000")], "over this server's limit of 10,000,000"),
    ([("size", "10x10"), ("size", "20x20")], "given 2 times"),
    ([("model", "gaic")], "model 'gaic' is not served here; served: composition, baseline-center"),
    ([("format", "gif")], "bad format 'gif'"),
    ([("format", "png"), ("ratio", "1:1,16:9")], "an image response holds one crop"),
    ([("quality", "101")], "bad quality"),
    ([("quality", "high")], "bad quality"),
    ([("subject", "1,2,3")], "bad subject '1,2,3': expected 4"),
    ([("subject", "10,10,5,20")], "need x1 < x2"),
    ([("focus", "nan,1")], "bad focus"),
])
def test_bad_parameters_are_400_naming_the_problem(items: list[tuple[str, str]], needle: str) -> None:
    with pytest.raises(RequestError) as e:
        _parse(*items)
    assert e.value.status == 400
    assert needle in e.value.message


def test_path_format_overrides_and_is_checked() -> None:
    assert _parse(("ratio", "1:1"), fmt="png").format == "png"
    with pytest.raises(RequestError, match="one crop"):
        _parse(("ratio", "1:1,2:1"), fmt="webp")


def test_openapi_lists_every_parameter_and_route() -> None:
    from opencrop.serve.openapi import docs_html, openapi

    spec = openapi(ServeSettings(models=MODELS), "0")
    names = [p["name"] for p in spec["paths"]["/crop"]["post"]["parameters"]]
    assert names == list(PARAMETERS)
    model = next(p for p in spec["paths"]["/crop"]["post"]["parameters"] if p["name"] == "model")
    assert model["schema"]["enum"] == list(MODELS)
    assert set(spec["paths"]["/crop"]["post"]["responses"]) == {"200", "400", "408", "413", "422", "500", "503",
                                                                 "504"}
    page = docs_html(spec)
    assert all(f"<code>{n}</code>" in page for n in PARAMETERS) and "<script" not in page


@pytest.mark.parametrize(("kw", "needle"), [
    ({"workers": 0}, "workers: must be at least 1"),
    ({"queue": -1}, "queue"),
    ({"port": 99999}, "port: must be 0..65535"),
    ({"weights": {"gaic": "w.pt"}}, "not served"),
    ({"timeout": 0}, "timeout"),
])
def test_settings_reject_bad_values(kw: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ServeSettings(**kw)


def test_settings_derive_queue_and_threads() -> None:
    s = ServeSettings(workers=2)
    assert s.queue_size == 8 and ServeSettings(workers=2, queue=0).queue_size == 0
    assert s.torch_threads >= 1 and ServeSettings(threads_per_worker=3).torch_threads == 3
