"""The documentation stays true: the generated API reference and the README's Python example."""

from __future__ import annotations

import pytest

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


def _readme_python_blocks() -> list[str]:
    import re

    text = (_apidoc.REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_readme_python_example_runs(real_data, capsys) -> None:
    """The README's first Python block, on the real Fadul pair: 19 CMCs at -24 degrees."""
    code = _readme_python_blocks()[0]
    assert "../shared/data/real/" in code
    code = code.replace("../shared/data/real/", real_data.as_posix() + "/")
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    c = namespace["c"]
    assert c.cmc_count == 19 and c.theta_deg == -24.0
    assert capsys.readouterr().out.split() == ["19", "-24.0"]
