"""The documentation stays true: the generated API reference and the README's Python example."""

from __future__ import annotations

from ballistics import _apidoc


def test_api_reference_is_current() -> None:
    text = _apidoc.generate()
    committed = _apidoc.DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert text == committed, "docs/api.md is out of date; run `python -m ballistics._apidoc`"
    # every name of the public face is documented, with nothing machine-specific in the page
    import ballistics

    for name in ballistics.__all__:
        assert f"### `ballistics.{name}`" in text
    assert " at 0x" not in text and str(_apidoc.REPO) not in text


def test_apidoc_check_flags_a_stale_page(tmp_path, capsys) -> None:
    page = tmp_path / "api.md"
    assert _apidoc.main(["--output", str(page)]) == 0
    assert _apidoc.main(["--check", "--output", str(page)]) == 0
    page.write_text(page.read_text(encoding="utf-8") + "stale\n", encoding="utf-8")
    assert _apidoc.main(["--check", "--output", str(page)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of date" in err
