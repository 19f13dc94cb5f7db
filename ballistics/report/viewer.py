"""The interactive viewer of an areal comparison: one self-contained HTML file.

:func:`viewer_html` builds a page that needs no server and no network (inline JavaScript
and CSS, images as base64 PNG data URIs): the reference and the target turned and shifted
onto it at the found pose (:func:`~ballistics.matching.breechface.align_target`) side by
side, an overlay of the two with an opacity slider, the cells of the reference -> target
direction (a checkbox shows them; clicking a cell highlights it on every panel and lists
its index, correlation, dx, dy and θ), zoom (mouse wheel) and pan (drag) kept in sync
across the panels, a height-profile tool (click two points: the profiles of both surfaces
along that line are plotted) and the case fields with the notes, which "Save case file"
downloads as the JSON object that ``--case-file`` reads
(:class:`~ballistics.report.case.CaseInfo`): a page opened from disk cannot write files.

The height maps are drawn with one fixed colour map (viridis) over one value range shared
by both surfaces (the 1st-99th percentiles of both), with a legend in µm (grey levels for
2D images); maps longer than ``max_side`` points are block-averaged so that the page stays
small, and the page states the scale (µm per displayed pixel). The page holds no time
stamp: the same comparison gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ballistics.errors import ParameterError
from ballistics.matching.breechface.comparison import Comparison
from ballistics.matching.breechface.pose import align_target
from ballistics.matching.evidence import Evidence, calibration_label
from ballistics.report.case import CaseInfo
from ballistics.scan import Scan

__all__ = ["COLORMAP", "downsample", "viewer_data", "viewer_html", "write_viewer"]

#: the colour map of both height maps (matplotlib's name)
COLORMAP = "viridis"

#: verdict of a cell -> outline colour (the report's cell grid uses the same)
_CELL_COLOURS = {"cmc": "#32cd32", "high": "#ffd700", "no": "#d62728", "invalid": "#999999"}


def downsample(heights: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``factor`` x ``factor`` points, NaN-aware (a block with no finite
    point is NaN); the last partial blocks are averaged over the points they have.

    Parameters
    ----------
    heights
        ``(rows, cols)`` values, NaN = missing.
    factor
        Block side in points (1 returns a float32 copy).

    Returns
    -------
    numpy.ndarray
        float32 ``(ceil(rows / factor), ceil(cols / factor))``.
    """
    if factor < 1:
        raise ParameterError(f"downsampling factor must be at least 1, got {factor}")
    h = np.asarray(heights, dtype=np.float32)
    if factor == 1:
        return h.copy()
    rows, cols = h.shape
    pr, pc = (-rows) % factor, (-cols) % factor
    padded = np.pad(h, ((0, pr), (0, pc)), constant_values=np.nan)
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        return np.nanmean(blocks, axis=(1, 3)).astype(np.float32)


def _png_data_uri(values: np.ndarray, lo: float, hi: float) -> str:
    """``values`` coloured by :data:`COLORMAP` over ``[lo, hi]`` (missing transparent) as
    a PNG data URI."""
    from matplotlib import colormaps
    from PIL import Image

    scaled = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    rgba = colormaps[COLORMAP](np.nan_to_num(scaled, nan=0.0), bytes=True)
    rgba[~np.isfinite(values), 3] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _legend_stops(n: int = 11) -> list[str]:
    """CSS colours of :data:`COLORMAP` at ``n`` evenly spaced stops (the legend)."""
    from matplotlib import colormaps

    cmap = colormaps[COLORMAP]
    return ["#{:02x}{:02x}{:02x}".format(*(int(round(255 * c)) for c in cmap(i / (n - 1))[:3]))
            for i in range(n)]


def _quantised(values: np.ndarray) -> dict[str, Any]:
    """Heights as base64 little-endian int16 with an offset and a step (missing: -32768),
    for the profile tool: exact to half a step, (max - min) / 60000."""
    ok = np.isfinite(values)
    lo, hi = (float(values[ok].min()), float(values[ok].max())) if ok.any() else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    step = span / 60000.0
    q = np.full(values.shape, -32768, dtype="<i2")
    q[ok] = np.clip(np.round((values[ok] - lo) / step) - 30000, -32767, 32767).astype("<i2")
    return {"offset": lo, "step": step, "data": base64.b64encode(q.tobytes()).decode("ascii")}


def _verdict(cell: dict[str, Any]) -> str:
    return ("cmc" if cell["is_cmc"] else "high" if cell["is_high_cmc"]
            else "no" if cell["valid"] else "invalid")


def _num(v: Any, nd: int = 4) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if not math.isfinite(f) else round(f, nd)


def _f(v: Any, spec: str) -> str:
    return "–" if v is None else format(float(v), spec)


def _shown(cell: dict[str, Any], c: Comparison) -> dict[str, str]:
    """A cell's numbers as the page shows them, formatted here (Python's rounding, the same
    as the report's) rather than in the browser."""
    same_angle = cell["valid"] and abs(cell["theta_deg"] - c.theta_deg) < 1e-6
    return {
        "corr": _f(cell["corr"], ".3f"), "ccf": _f(cell["ccf"], ".3f"),
        "dx": _f(cell["dx_um"], ".1f"), "dy": _f(cell["dy_um"], ".1f"),
        "theta": _f(cell["theta_deg"], ".1f"),
        "missing": _f(100 * cell["missing_fraction"], ".1f"),
        "offset": (f"{cell['dx_um'] - c.dx_um:.1f}, {cell['dy_um'] - c.dy_um:.1f}"
                   if same_angle else ""),
    }


def viewer_data(reference: Scan, target: Scan, comparison: Comparison, *,
                evidence: Evidence | None = None, case: CaseInfo | None = None,
                names: tuple[str, str] | None = None, max_side: int = 1000,
                case_file_name: str = "case.json") -> dict[str, Any]:
    """The JSON object the viewer page is built from (see :func:`viewer_html`).

    Keys: ``title``, ``names``, ``shape`` (displayed rows, cols), ``source_shape``,
    ``factor`` (points per displayed pixel), ``um_per_px`` (dy, dx), ``modality``,
    ``range`` (colour range), ``legend`` (colours), ``images`` (data URIs of
    ``reference`` and ``aligned``), ``heights`` (quantised values of both), ``cells``
    (per cell of the reference -> target direction: position and size in displayed
    pixels, verdict, numbers), ``pose``, ``summary`` (rows of the result table),
    ``case`` and ``case_file_name``.
    """
    if max_side < 16:
        raise ParameterError(f"max_side must be at least 16 pixels, got {max_side}")
    c = comparison
    names = names or (Path(reference.source).name if reference.source else "reference",
                      Path(target.source).name if target.source else "target")
    aligned = align_target(reference, target, c)
    rows, cols = reference.shape
    factor = max(1, math.ceil(max(rows, cols) / max_side))
    ref_small = downsample(reference.heights, factor)
    ali_small = downsample(aligned, factor)
    both = np.concatenate([ref_small[np.isfinite(ref_small)], ali_small[np.isfinite(ali_small)]])
    if both.size:
        lo, hi = (float(v) for v in np.percentile(both, [1, 99]))
    else:
        lo, hi = 0.0, 1.0
    if not hi > lo:
        hi = lo + 1.0
    g = c.forward.result.geometry
    # cells are on the compared grid (c.spacing_um); the reference may be finer
    sy = c.spacing_um[0] / reference.spacing_um[0] / factor
    sx = c.spacing_um[1] / reference.spacing_um[1] / factor
    cells = []
    for k, cell in enumerate(c.cells):
        r0, c0 = (float(v) for v in g.cell_start[k])
        h, w = (float(v) for v in g.cell_size[k])
        cells.append({
            "k": k, "index": [int(v) for v in cell["index"]],
            "x": c0 * sx, "y": r0 * sy, "w": w * sx, "h": h * sy,
            "verdict": _verdict(cell), "valid": bool(cell["valid"]),
            "corr": _num(cell["corr"]), "ccf": _num(cell["ccf"]),
            "dx_um": _num(cell["dx_um"], 2), "dy_um": _num(cell["dy_um"], 2),
            "theta_deg": _num(cell["theta_deg"], 2),
            "missing_fraction": _num(cell["missing_fraction"], 3),
            "is_cmc": bool(cell["is_cmc"]), "is_high_cmc": bool(cell["is_high_cmc"]),
            "shown": _shown(cell, c),
        })
    summary: list[list[str]] = [
        ["CMC count (reference → target)", str(c.cmc_count)],
        ["CMC count (target → reference)", str(c.cmc_count_reverse)],
        ["High CMC count", str(c.cmc_count_high)],
        ["CMC count, both directions combined", str(c.cmc_count_combined)],
        ["pose of the target: θ, dx, dy", f"{c.theta_deg:.2f}°, {c.dx_um:.1f} µm, "
                                          f"{c.dy_um:.1f} µm"],
    ]
    if evidence is not None:
        summary += [["score", f"{evidence.score:.3f}"],
                    ["log10 LR", f"{evidence.lr_text} ({evidence.verbal})"],
                    ["calibration", calibration_label(evidence.calibration)]]
        # the caveats that qualify the LR (another preset than the calibration's, images)
        summary += [["LR caveat", w] for w in evidence.lr_caveats]
    summary += [[f"{n} SHA-256", str(s.sha256 or "–")]
                for n, s in zip(names, (reference, target), strict=True)]
    um = (reference.spacing_um[0] * factor, reference.spacing_um[1] * factor)
    return {
        "schema": 1,
        "title": f"Viewer: {names[0]} vs {names[1]}",
        "names": list(names),
        "shape": [int(ref_small.shape[0]), int(ref_small.shape[1])],
        "source_shape": [int(rows), int(cols)],
        "factor": factor,
        "um_per_px": [float(um[0]), float(um[1])],
        "modality": reference.modality,
        "unit": "grey level" if reference.modality == "image" else "µm",
        "range": [lo, hi],
        "legend": _legend_stops(),
        "images": {"reference": _png_data_uri(ref_small, lo, hi),
                   "aligned": _png_data_uri(ali_small, lo, hi)},
        "heights": {"reference": _quantised(ref_small),
                    "aligned": _quantised(ali_small)},
        "cells": cells,
        "cell_colours": _CELL_COLOURS,
        "pose": {"theta_deg": float(c.theta_deg), "dx_um": float(c.dx_um),
                 "dy_um": float(c.dy_um),
                 "text": f"θ {c.theta_deg:.2f}°, dx {c.dx_um:.1f} µm, dy {c.dy_um:.1f} µm"},
        "summary": summary,
        "case": (case or CaseInfo()).to_dict(),
        "case_file_name": case_file_name,
        "version": c.version,
    }


def _script_json(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def viewer_html(reference: Scan, target: Scan, comparison: Comparison, *,
                evidence: Evidence | None = None, case: CaseInfo | None = None,
                names: tuple[str, str] | None = None, max_side: int = 1000,
                case_file_name: str = "case.json") -> str:
    """The viewer page of one comparison: a self-contained HTML document.

    Parameters
    ----------
    reference, target
        The processed scans that were compared (same spacing).
    comparison
        Their :func:`~ballistics.matching.breechface.compare` result.
    evidence
        Score, LR and verbal scale (:func:`ballistics.matching.evidence.evaluate`), shown
        in the result table when given.
    case
        The case fields; the page's form starts with them and "Save case file" downloads
        them with the notes as typed.
    names
        Display names (default: the scans' file names).
    max_side
        Longest side of the displayed maps in pixels; longer maps are block-averaged by
        the smallest integer factor that fits (the page states the scale).
    case_file_name
        File name the browser offers for the downloaded case file.

    Returns
    -------
    str
        The HTML page (UTF-8 text).

    Raises
    ------
    ParameterError
        ``max_side`` under 16.
    """
    data = viewer_data(reference, target, comparison, evidence=evidence, case=case,
                       names=names, max_side=max_side, case_file_name=case_file_name)
    title = html.escape(data["title"])
    return (_TEMPLATE.replace("__TITLE__", title)
            .replace("__CSS__", _CSS).replace("__JS__", _JS)
            .replace("__DATA__", _script_json(data)))


def write_viewer(reference: Scan, target: Scan, comparison: Comparison,
                 out: str | Path, **kwargs: Any) -> str:
    """Write :func:`viewer_html` (keyword arguments passed on) to ``out``; return the
    file's SHA-256 (hex)."""
    data = viewer_html(reference, target, comparison, **kwargs).encode("utf-8")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__CSS__</style></head>
<body>
<header><h1 id="title">__TITLE__</h1>
<p class="hint">Wheel: zoom (all panels) · drag: pan · click a cell: its numbers ·
Profile: click two points. The software proposes; the examiner decides.</p></header>
<section id="controls">
<label>overlay opacity of the aligned target
<input type="range" id="opacity" min="0" max="100" value="50"></label>
<span id="opacity-value">0.50</span>
<label><input type="checkbox" id="show-cells" checked> CMC cells</label>
<button type="button" id="profile-mode">Profile line</button>
<button type="button" id="reset-view">Reset zoom</button>
<span id="scale"></span>
</section>
<main>
<div class="panels">
<figure><figcaption id="cap-reference"></figcaption>
<div class="panel" id="panel-reference"><div class="stage">
<img id="img-reference" alt="reference height map" draggable="false">
<svg class="cells"></svg><svg class="line"></svg></div></div></figure>
<figure><figcaption id="cap-aligned"></figcaption>
<div class="panel" id="panel-aligned"><div class="stage">
<img id="img-aligned" alt="aligned target height map" draggable="false">
<svg class="cells"></svg><svg class="line"></svg></div></div></figure>
<figure><figcaption>overlay: reference under the aligned target</figcaption>
<div class="panel" id="panel-overlay"><div class="stage">
<img id="img-overlay-base" alt="reference height map" draggable="false">
<img id="img-overlay-top" class="top" alt="aligned target height map" draggable="false">
<svg class="cells"></svg><svg class="line"></svg></div></div></figure>
</div>
<div class="legend"><span id="legend-lo"></span><div id="legend-bar"></div>
<span id="legend-hi"></span> <span id="legend-label"></span>
<span class="swatch" style="border-color:#32cd32"></span>CMC
<span class="swatch" style="border-color:#ffd700"></span>High CMC only
<span class="swatch" style="border-color:#d62728"></span>not congruent
<span class="swatch" style="border-color:#999999"></span>too incomplete</div>
<div class="side">
<section id="cell-info"><h2>Cell</h2><p id="cell-text">Click a cell.</p></section>
<section id="profile"><h2>Height profile</h2><p id="profile-text">Press "Profile line",
then click two points on any panel.</p><svg id="profile-plot" width="560" height="220"></svg>
</section>
<section id="result"><h2>Result</h2><table id="summary"></table></section>
<section id="notes"><h2>Case and notes</h2>
<label>case <input id="case-case" maxlength="200"></label>
<label>exhibit <input id="case-exhibit" maxlength="200"></label>
<label>examiner <input id="case-examiner" maxlength="200"></label>
<label>notes<br><textarea id="case-notes" rows="6" maxlength="20000"></textarea></label>
<button type="button" id="save-case">Save case file</button>
<p class="hint">Downloads the case file (JSON: case, exhibit, examiner, notes); give it to
<code>ballistics compare ... --case-file FILE --report R.html</code> to put the notes in
the report.</p></section>
</div></main>
<script id="viewer-data" type="application/json">__DATA__</script>
<script>__JS__</script>
</body></html>
"""

_CSS = """
body{font-family:system-ui,sans-serif;margin:12px;color:#222;background:#fafafa}
h1{font-size:18px;margin:4px 0}h2{font-size:15px;margin:6px 0}
.hint{color:#555;font-size:12px;margin:2px 0}
#controls{display:flex;gap:14px;align-items:center;flex-wrap:wrap;font-size:13px;margin:6px 0}
.panels{display:flex;gap:10px;flex-wrap:wrap}
figure{margin:0;width:402px}figcaption{font-size:12px;color:#333;margin-bottom:2px;height:30px}
.panel{width:400px;height:400px;overflow:hidden;position:relative;background:#ddd;
border:1px solid #888;cursor:grab;user-select:none}
.panel.profiling{cursor:crosshair}
.stage{position:absolute;left:0;top:0;transform-origin:0 0}
.stage img{position:absolute;left:0;top:0;image-rendering:pixelated}
.stage svg{position:absolute;left:0;top:0;overflow:visible;pointer-events:none}
.cells rect{fill:none;stroke-width:1}
.cells rect.selected{stroke:#ff00ff;stroke-width:3}
.cells rect.match{stroke:#ff00ff;stroke-dasharray:4 3;stroke-width:2}
.legend{display:flex;align-items:center;gap:6px;font-size:12px;margin:6px 0}
#legend-bar{width:220px;height:12px;border:1px solid #666}
.swatch{display:inline-block;width:12px;height:9px;border:2px solid;margin-left:8px}
.side{display:flex;gap:16px;flex-wrap:wrap}.side section{min-width:300px}
table{border-collapse:collapse;font-size:12px}td{border:1px solid #ccc;padding:2px 6px}
#notes label{display:block;font-size:13px;margin:3px 0}#notes input{width:260px}
#notes textarea{width:100%;min-width:300px}
button{font-size:13px}button.active{background:#ffd;border:2px solid #c90}
"""

_JS = r"""
"use strict";
const D = JSON.parse(document.getElementById("viewer-data").textContent);
const H = D.shape[0], W = D.shape[1];
const panels = ["reference", "aligned", "overlay"].map(n => document.getElementById("panel-" + n));
const stages = panels.map(p => p.querySelector(".stage"));
const view = {s: 1, tx: 0, ty: 0};
let selected = null, profiling = false, points = [];

function decode(q) {
  const bin = atob(q.data), n = bin.length / 2, out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8);
    if (v >= 32768) v -= 65536;
    out[i] = v === -32768 ? NaN : q.offset + (v + 30000) * q.step;
  }
  return out;
}
const heights = {reference: decode(D.heights.reference), aligned: decode(D.heights.aligned)};

function fmt(v, nd) { return v === null || v === undefined ? "–" : Number(v).toFixed(nd); }

function setup() {
  document.getElementById("cap-reference").textContent = "reference: " + D.names[0];
  document.getElementById("cap-aligned").textContent =
    "target aligned at the found pose: " + D.names[1] + " (" + D.pose.text + ")";
  const imgs = {"img-reference": D.images.reference, "img-aligned": D.images.aligned,
                "img-overlay-base": D.images.reference, "img-overlay-top": D.images.aligned};
  for (const [id, src] of Object.entries(imgs)) {
    const im = document.getElementById(id);
    im.width = W; im.height = H; im.src = src;
  }
  document.getElementById("scale").textContent = "scale: 1 pixel = " +
    fmt(D.um_per_px[1], 2) + " µm (" + D.source_shape[0] + " × " + D.source_shape[1] +
    " points" + (D.factor > 1 ? ", averaged " + D.factor + " × " + D.factor : "") + ")";
  document.getElementById("legend-lo").textContent = fmt(D.range[0], 2);
  document.getElementById("legend-hi").textContent = fmt(D.range[1], 2);
  document.getElementById("legend-label").textContent =
    D.unit === "µm" ? "height (µm)" : "grey level";
  document.getElementById("legend-bar").style.background =
    "linear-gradient(to right," + D.legend.join(",") + ")";
  const tbl = document.getElementById("summary");
  for (const [k, v] of D.summary) {
    const tr = tbl.insertRow(); tr.insertCell().textContent = k; tr.insertCell().textContent = v;
  }
  for (const k of ["case", "exhibit", "examiner", "notes"])
    document.getElementById("case-" + k).value = D.case[k] || "";
  const ns = "http://www.w3.org/2000/svg";
  for (const st of stages) {
    for (const svg of st.querySelectorAll("svg")) {
      svg.setAttribute("width", W); svg.setAttribute("height", H);
      svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    }
    const g = st.querySelector("svg.cells");
    for (const c of D.cells) {
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", c.x); r.setAttribute("y", c.y);
      r.setAttribute("width", c.w); r.setAttribute("height", c.h);
      r.setAttribute("stroke", D.cell_colours[c.verdict]);
      r.dataset.cell = c.k; g.appendChild(r);
    }
  }
  const p = panels[0];
  view.s = Math.min(p.clientWidth / W, p.clientHeight / H); view.tx = 0; view.ty = 0;
  applyView(); setOpacity();
}

function applyView() {
  const t = "translate(" + view.tx + "px, " + view.ty + "px) scale(" + view.s + ")";
  for (const st of stages) st.style.transform = t;
}

function setOpacity() {
  const v = document.getElementById("opacity").value / 100;
  document.getElementById("img-overlay-top").style.opacity = v;
  document.getElementById("opacity-value").textContent = v.toFixed(2);
}

function toImage(panel, ev) {
  const b = panel.getBoundingClientRect();
  return [(ev.clientX - b.left - view.tx) / view.s, (ev.clientY - b.top - view.ty) / view.s];
}

function selectCell(k) {
  selected = k;
  for (const st of stages) {
    for (const r of st.querySelectorAll("svg.cells rect")) {
      r.classList.toggle("selected",
                         Number(r.dataset.cell) === k && !r.classList.contains("match"));
    }
    for (const m of st.querySelectorAll("rect.match")) m.remove();
  }
  const c = D.cells[k], t = c.shown;
  let text = "cell " + c.index[0] + "," + c.index[1] + " (row, column): " +
    {cmc: "CMC", high: "High CMC only", no: "not congruent", invalid: "too incomplete"}[c.verdict];
  if (c.valid) {
    text += "; correlation " + t.corr + ", CCF " + t.ccf + ", dx " + t.dx + " µm, dy " +
      t.dy + " µm, θ " + t.theta + "°, missing " + t.missing + " %";
    if (t.offset) {
      // the cell's own match in the aligned target: its translation less the consensus one
      const ox = (c.dx_um - D.pose.dx_um) / D.um_per_px[1];
      const oy = (c.dy_um - D.pose.dy_um) / D.um_per_px[0];
      text += "; its match (dashed) lies " + t.offset + " µm from the consensus pose";
      for (const i of [1, 2]) {
        const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
        r.setAttribute("x", c.x + ox); r.setAttribute("y", c.y + oy);
        r.setAttribute("width", c.w); r.setAttribute("height", c.h);
        r.classList.add("match"); stages[i].querySelector("svg.cells").appendChild(r);
      }
    } else {
      text += "; matched at another angle than the consensus θ (its match is not drawn)";
    }
  } else {
    text += "; missing " + t.missing + " %";
  }
  document.getElementById("cell-text").textContent = text;
  document.getElementById("cell-info").dataset.cell = c.index.join(",");
}

function cellAt(x, y) {
  for (const c of D.cells) if (x >= c.x && x < c.x + c.w && y >= c.y && y < c.y + c.h) return c.k;
  return null;
}

function sample(arr, x, y) {
  const i = Math.floor(y), j = Math.floor(x);
  if (i < 0 || j < 0 || i >= H || j >= W) return NaN;
  return arr[i * W + j];
}

function drawProfile() {
  const ns = "http://www.w3.org/2000/svg";
  for (const st of stages) {
    const svg = st.querySelector("svg.line"); svg.innerHTML = "";
    for (const [k, pt] of points.entries()) {
      const c = document.createElementNS(ns, "circle");
      c.setAttribute("cx", pt[0]); c.setAttribute("cy", pt[1]); c.setAttribute("r", 3 / view.s);
      c.setAttribute("fill", k ? "#fff" : "#f0f"); svg.appendChild(c);
    }
    if (points.length === 2) {
      const l = document.createElementNS(ns, "line");
      l.setAttribute("x1", points[0][0]); l.setAttribute("y1", points[0][1]);
      l.setAttribute("x2", points[1][0]); l.setAttribute("y2", points[1][1]);
      l.setAttribute("stroke", "#f0f"); l.setAttribute("stroke-width", 2 / view.s);
      svg.appendChild(l);
    }
  }
  if (points.length < 2) return;
  const [[x0, y0], [x1, y1]] = points;
  const n = Math.max(2, Math.ceil(Math.hypot(x1 - x0, y1 - y0)) + 1);
  const umx = D.um_per_px[1], umy = D.um_per_px[0];
  const len = Math.hypot((x1 - x0) * umx, (y1 - y0) * umy);
  const prof = {reference: [], aligned: []};
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const t = i / (n - 1), x = x0 + t * (x1 - x0), y = y0 + t * (y1 - y0);
    for (const k of ["reference", "aligned"]) {
      const v = sample(heights[k], x, y); prof[k].push(v);
      if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
  }
  const svg = document.getElementById("profile-plot"); svg.innerHTML = "";
  const Wp = 560, Hp = 220, m = {l: 50, r: 10, t: 10, b: 30};
  if (!(hi > lo)) { hi = lo + 1; }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  const X = d => m.l + d / (len || 1) * (Wp - m.l - m.r);
  const Y = v => Hp - m.b - (v - lo) / (hi - lo) * (Hp - m.t - m.b);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e); return e;
  };
  add("rect", {x: m.l, y: m.t, width: Wp - m.l - m.r, height: Hp - m.t - m.b,
               fill: "#fff", stroke: "#888"});
  const colours = {reference: "#1f77b4", aligned: "#d62728"};
  for (const k of ["reference", "aligned"]) {
    let d = "", pen = false;
    prof[k].forEach((v, i) => {
      if (!Number.isFinite(v)) { pen = false; return; }
      d += (pen ? "L" : "M") + X(len * i / (n - 1)).toFixed(1) + " " + Y(v).toFixed(1) + " ";
      pen = true;
    });
    add("path", {d: d, fill: "none", stroke: colours[k], "stroke-width": 1.2,
                 "class": "profile-" + k});
  }
  add("text", {x: m.l, y: Hp - 8, "font-size": 11}, "0");
  add("text", {x: Wp - m.r, y: Hp - 8, "font-size": 11, "text-anchor": "end"},
      fmt(len, 0) + " µm along the line");
  add("text", {x: 2, y: m.t + 10, "font-size": 11}, fmt(hi, 2));
  add("text", {x: 2, y: Hp - m.b, "font-size": 11}, fmt(lo, 2));
  add("text", {x: m.l + 8, y: m.t + 14, "font-size": 11, fill: colours.reference}, "reference");
  add("text", {x: m.l + 80, y: m.t + 14, "font-size": 11, fill: colours.aligned}, "aligned target");
  document.getElementById("profile-text").textContent = "line of " + fmt(len, 1) +
    " µm, " + n + " samples; heights in " + D.unit + " (" + fmt(lo, 2) + " to " + fmt(hi, 2) + ")";
  svg.dataset.samples = n;
}

function onClick(panel, ev) {
  const [x, y] = toImage(panel, ev);
  if (profiling) {
    if (points.length === 2) points = [];
    points.push([x, y]); drawProfile();
    return;
  }
  const k = cellAt(x, y);
  if (k !== null) selectCell(k);
}

for (const p of panels) {
  let down = null;
  p.addEventListener("wheel", ev => {
    ev.preventDefault();
    const b = p.getBoundingClientRect(), mx = ev.clientX - b.left, my = ev.clientY - b.top;
    const f = Math.exp(-ev.deltaY * 0.0015), s = Math.min(50, Math.max(0.05, view.s * f));
    view.tx = mx - (mx - view.tx) * s / view.s; view.ty = my - (my - view.ty) * s / view.s;
    view.s = s; applyView(); if (points.length) drawProfile();
  }, {passive: false});
  p.addEventListener("mousedown", ev => {
    down = {x: ev.clientX, y: ev.clientY, tx: view.tx, ty: view.ty, moved: false};
  });
  window.addEventListener("mousemove", ev => {
    if (!down) return;
    const dx = ev.clientX - down.x, dy = ev.clientY - down.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) down.moved = true;
    if (down.moved) { view.tx = down.tx + dx; view.ty = down.ty + dy; applyView(); }
  });
  window.addEventListener("mouseup", ev => {
    if (!down) return;
    const d = down; down = null;
    if (!d.moved && p.contains(ev.target)) onClick(p, ev);
  });
}

document.getElementById("opacity").addEventListener("input", setOpacity);
document.getElementById("show-cells").addEventListener("change", ev => {
  for (const g of document.querySelectorAll("svg.cells"))
    g.style.display = ev.target.checked ? "" : "none";
});
document.getElementById("profile-mode").addEventListener("click", ev => {
  profiling = !profiling; ev.target.classList.toggle("active", profiling);
  for (const p of panels) p.classList.toggle("profiling", profiling);
});
document.getElementById("reset-view").addEventListener("click", () => {
  const p = panels[0];
  view.s = Math.min(p.clientWidth / W, p.clientHeight / H); view.tx = 0; view.ty = 0;
  applyView(); if (points.length) drawProfile();
});
document.getElementById("save-case").addEventListener("click", () => {
  const out = {};
  for (const k of ["case", "exhibit", "examiner", "notes"]) {
    const v = document.getElementById("case-" + k).value.trim();
    out[k] = v ? v : null;
  }
  const blob = new Blob([JSON.stringify(out, null, 2) + "\n"], {type: "application/json"});
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob); a.download = D.case_file_name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
setup();
"""
