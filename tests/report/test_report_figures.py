"""Report figures: plain ``Figure`` objects (no pyplot state, no backend switch), what they
draw and how they label it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from ballistics.scan import Scan
from tests.surfaces import ellipse_surface, turned


def _pair(modality: str = "topography") -> tuple[Scan, Scan]:
    ref = ellipse_surface(1)
    tgt = turned(ref)
    return (Scan(ref, (12.5, 12.5), modality=modality),
            Scan(tgt, (12.5, 12.5), modality=modality))


@pytest.fixture(scope="module")
def compared():
    from ballistics.matching.breechface import compare

    ref, tgt = _pair()
    return ref, tgt, compare(ref, tgt, "cmcR", rotation=(-6, 3, 3), device="cpu")


def _labels(fig: Figure) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes]


def _legend_texts(legend) -> list[str]:
    return [t.get_text() for t in legend.get_texts()]


def test_overlay_colours_are_what_the_text_says():
    from ballistics.report._figures import overlay_rgb

    a = np.array([[0.0, 1.0, 2.0, 0.0, 2.0, np.nan]] * 3)  # non-square (3, 6)
    b = np.array([[2.0, 1.0, 0.0, 0.0, 2.0, 1.0]] * 3)
    rgb = overlay_rgb(a, b)
    assert rgb.shape == (3, 6, 3)
    assert np.allclose(rgb[0, 2], (1, 0, 0))  # first higher: red
    assert np.allclose(rgb[0, 0], (0, 1, 1))  # second higher: cyan
    assert np.allclose(rgb[0, 1], (0.5, 0.5, 0.5))  # equal: grey
    assert np.allclose(rgb[0, 3], (0, 0, 0)) and np.allclose(rgb[0, 4], (1, 1, 1))
    assert np.allclose(rgb[0, 5], (1, 1, 1))  # missing in one: white


def test_compare_figures(compared):
    from ballistics.matching.breechface import align_target
    from ballistics.report._figures import overlay_rgb
    from ballistics.report.compare import (
        cell_grid_figure,
        cmc_theta_figure,
        overlay_figure,
        surfaces_figure,
    )

    ref, tgt, c = compared
    fig = surfaces_figure(ref, tgt, ("a.x3p", "b.x3p"))
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # two panels, two colour bars
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a.x3p", "b.x3p"]
    assert _labels(fig)[2:] == ["height (µm)", "height (µm)"]

    aligned = align_target(ref, tgt, c)
    fig = overlay_figure(ref, aligned)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert "red" in ax.get_title() and "cyan" in ax.get_title()
    assert "green" not in ax.get_title()
    assert np.allclose(ax.images[0].get_array(), overlay_rgb(ref.heights, aligned))
    assert _legend_texts(ax.get_legend())[:2] == ["reference higher", "aligned target higher"]
    assert "(µm)" in fig.axes[1].get_title() and fig.axes[2].get_ylabel().endswith("(µm)")

    fig = cell_grid_figure(ref, c)
    assert len(fig.axes[0].patches) == len(c.cells) == 64
    assert f"CMC ({c.cmc_count})" in _legend_texts(fig.axes[0].get_legend())

    fig = cmc_theta_figure(c)
    assert [ax.get_title() for ax in fig.axes] == [
        "CMC-theta distribution, reference → target",
        "CMC-theta distribution, target → reference"]
    assert fig.axes[0].get_xlabel() == "rotation of the target θ (°)"


def test_image_modality_is_labelled_grey_level(compared):
    from ballistics.matching.breechface import align_target
    from ballistics.report.compare import overlay_figure, surfaces_figure

    ref, tgt, c = compared
    iref, itgt = ref.replace(modality="image"), tgt.replace(modality="image")
    fig = surfaces_figure(iref, itgt)
    assert _labels(fig)[2:] == ["grey level", "grey level"]
    fig = overlay_figure(iref, align_target(ref, tgt, c))
    assert "µm" not in fig.axes[1].get_title() and "µm" not in fig.axes[2].get_ylabel()
    assert fig.axes[2].get_ylabel() == "grey-level difference"


def test_search_candidate_figure(compared):
    from ballistics.report.search import candidate_figure

    ref, tgt, c = compared
    fig = candidate_figure(ref, tgt, c, "#1 b")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["query", "#1 b"]
    title = fig.axes[2].get_title()
    assert title.startswith("aligned overlay (query red, candidate cyan), r = ")
    assert float(title.rsplit("= ", 1)[1]) > 0.5  # the same surface, turned back onto itself


def test_striae_figures():
    from ballistics.datasets.synthetic.striae import (
        fire_bullet,
        make_barrel,
        make_mark,
        make_tool,
        striae_params,
    )
    from ballistics.matching.striae import compare_bullets, compare_signatures, lea_signature
    from ballistics.matching.striae.signatures import extract_signature
    from ballistics.report.striae import land_matrix_figure, signatures_figure

    p = striae_params("realistic")
    tool = make_tool("F1", 1, p)
    sa, sb = (extract_signature(make_mark(tool, k, p, direction_deg=90.0,
                                          shape=(110, 260)).scan) for k in (1, 2))
    c = compare_signatures(sa, sb)
    fig = signatures_figure(sa, sb, c, ("a", "b"))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[0].get_title().startswith("aligned signatures: CCF")
    assert _legend_texts(fig.axes[0].get_legend()) == ["a", "b" + (" (reversed)"
                                                                  if c.reversed else "")]

    pb = striae_params("easy", land_length_um=150.0, land_width_um=1000.0)
    barrel = make_barrel("B9", 9, pb)
    a, b = fire_bullet(barrel, 1, pb), fire_bullet(barrel, 2, pb)
    res = compare_bullets([lea_signature(s) for s in a.lands],
                          [lea_signature(s) for s in b.lands])
    fig = land_matrix_figure(res)
    assert fig.axes[0].get_title() == f"land-to-land CCF, best phase {res.best_phase}"
    assert len(fig.axes[0].patches) == res.ccf.shape[0]
    assert fig.axes[1].get_ylabel() == "CCF"
    # lands numbered from 1 in file order (trial 4: ticks 0-5 beside files Land_1-Land_6)
    n = res.ccf.shape[0]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [str(k) for k in
                                                                     range(1, n + 1)]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [str(k) for k in
                                                                     range(1, n + 1)]
    assert fig.axes[0].get_xlabel() == "land of B (1 = its first file)"


def test_segmentation_figure_names_what_it_draws():
    from ballistics.datasets.synthetic import fire, make_firearm, params_for
    from ballistics.preprocess import segment
    from ballistics.report.segmentation import segmentation_figure

    p = params_for("realistic", spacing_um=12.5, field_um=(4480.0, 4700.0))
    c = fire(make_firearm("C1", 11, p), 3, p, modality="both")
    items = [("topography", c.scan, segment(c.scan)), ("image", c.image, segment(c.image))]
    fig = segmentation_figure(items, ncols=2, panel_in=5.0)
    assert isinstance(fig, Figure)
    assert fig.get_size_inches()[0] == pytest.approx(10.0)
    assert [ax.get_ylabel() for ax in fig.axes[2:]] == ["height (µm)", "grey level"]
    texts = _legend_texts(fig.legends[0])
    assert "outside the breech-face region (excluded)" in texts
    assert "breech-face region edge (mask)" in texts
    assert "primer circle (+ centre)" in texts and "firing-pin circle (+ centre)" in texts
    assert "ground-truth region edge" not in texts


def test_reports_leave_the_backend_and_pyplot_alone(tmp_path):
    code = textwrap.dedent(f"""
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        plt.figure()  # the user's own figure
        before = plt.get_fignums()
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_report_figures import _pair
        from ballistics.matching.breechface import compare
        from ballistics.preprocess import segment
        from ballistics.report.compare import compare_report
        from ballistics.report.segmentation import save_segmentation_figure
        from ballistics.report.segmentation import segmentation_figure

        ref, tgt = _pair()
        c = compare(ref, tgt, "cmcR", rotation=(-3, 3, 3), device="cpu")
        doc = compare_report(ref, tgt, c)
        assert doc.count("<img") == 4, doc.count("<img")
        fig = segmentation_figure([("a", ref, segment(ref))])
        save_segmentation_figure([("a", ref, segment(ref))], {str(tmp_path / "s.png")!r})
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert plt.get_fignums() == before, (plt.get_fignums(), before)
        print("ok")
    """)
    root = Path(__file__).resolve().parents[2]  # this checkout's ballistics comes first
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
