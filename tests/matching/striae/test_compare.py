"""Comparison of striation signatures and of bullets (synthetic and real Hamby 44)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ballistics.datasets.synthetic.striae import (
    fire_bullet,
    make_barrel,
    striae_params,
    true_phase,
)
from ballistics.errors import NoSignatureError, ScanWarning
from ballistics.matching.striae import (
    StriaeCompareParams,
    ccf_curve,
    compare_bullets,
    compare_signatures,
    match_striae,
    resample_signature,
)
from ballistics.matching.striae.lea import lea_signature
from ballistics.matching.striae.signatures import Signature


def _striae(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.convolve(rng.normal(size=n + 8), np.ones(5) / 5, mode="valid")[:n]


def _sig(values: np.ndarray, spacing: float = 2.0) -> Signature:
    return Signature(values=values, spacing_um=spacing, kind="mark", direction_deg=90.0,
                     profile=values)


def test_identical_and_shifted_signatures() -> None:
    v = _striae(600, 1)
    c = compare_signatures(_sig(v), _sig(v))
    assert c.ccf_max == pytest.approx(1.0, abs=1e-9)
    assert c.lag_um == 0 and c.d_um == pytest.approx(0.0, abs=1e-9)
    assert c.overlap_um == pytest.approx(600 * 2.0)
    assert c.cms >= 20 and c.cnms == 0
    # B = A shifted by 37 samples: a feature at p in A sits at p - 37 in B
    c2 = compare_signatures(_sig(v[37:]), _sig(v[:-37]))
    assert c2.ccf_max == pytest.approx(1.0, abs=1e-9)
    assert c2.lag_um == pytest.approx(37 * 2.0)
    d = c2.to_dict()
    for key in ("ccf_max", "lag_um", "cms", "overlap_um", "d_um", "matches", "version"):
        assert key in d


def test_unrelated_signatures_score_low() -> None:
    c = compare_signatures(_sig(_striae(700, 1)), _sig(_striae(700, 2)))
    same = compare_signatures(_sig(_striae(700, 1)), _sig(_striae(700, 1)))
    assert c.ccf_max < 0.35
    assert c.cms <= same.cms / 3 and c.cnms > 0
    assert c.d_normalised > 1.0


def test_nan_aware_ccf_matches_direct_computation() -> None:
    a, b = _striae(200, 3), _striae(150, 4)
    a[20:30] = np.nan
    b[5] = np.nan
    lags, r, n = ccf_curve(a, b, 20)
    k = 12
    i = np.arange(a.size)
    j = i + k
    ok = (j >= 0) & (j < b.size)
    x, y = a[i[ok]], b[j[ok]]
    m = np.isfinite(x) & np.isfinite(y)
    direct = np.corrcoef(x[m], y[m])[0, 1]
    assert r[np.flatnonzero(lags == k)[0]] == pytest.approx(direct, abs=1e-9)


def test_different_spacing_is_resampled_with_a_warning() -> None:
    fine = _striae(1200, 5)
    coarse = resample_signature(fine, 1.0, 2.5)
    assert coarse.size == pytest.approx(1200 / 2.5, abs=1)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", ScanWarning)
        c = compare_signatures(_sig(fine, 1.0), _sig(coarse, 2.5))
    assert c.spacing_um == 2.5 and c.ccf_max > 0.9
    assert any("resampled" in str(x.message) for x in w) and c.warnings


def test_reversed_signature_only_when_asked() -> None:
    v = _striae(500, 6)
    plain = compare_signatures(_sig(v), _sig(v[::-1].copy()))
    rev = compare_signatures(_sig(v), _sig(v[::-1].copy()), StriaeCompareParams(try_reversed=True))
    assert rev.reversed and rev.ccf_max == pytest.approx(1.0)
    assert plain.ccf_max < 0.5 and not plain.reversed


def test_no_overlap_raises() -> None:
    with pytest.raises(NoSignatureError):
        compare_signatures(_sig(np.full(50, np.nan)), _sig(_striae(50, 1)))


def test_match_striae_counts() -> None:
    x = np.linspace(0, 20 * np.pi, 400)
    a = np.sin(x)
    cms, cnms, m, nm = match_striae(a, a.copy(), 2, 0.5)
    assert cms == m == 20 and nm == 0 and cnms == 0  # 10 peaks + 10 valleys
    b = a.copy()
    b[200:] = np.sin(x[200:] + np.pi / 2)  # the second half is out of phase
    cms2, _, m2, nm2 = match_striae(a, b, 2, 0.5)
    assert cms2 < cms and nm2 > 0


def test_match_striae_subsample_positions_and_shift() -> None:
    # 8 samples per stria period, B shifted by 0.4 sample: with a tolerance of 0.3 sample only
    # sub-sample extrema plus the known shift make every stria match
    x = np.arange(300, dtype=float)
    a = np.sin(2 * np.pi * x / 16.0)
    b = np.sin(2 * np.pi * (x - 0.4) / 16.0)
    cms_none, *_ = match_striae(a, b, 0.3, 0.5, lenient_prominence_rq=0.25)
    cms_shift, _, m, nm = match_striae(a, b, 0.3, 0.5, lenient_prominence_rq=0.25, shift_b=-0.4)
    assert cms_shift == m and nm == 0 and m >= 35
    assert cms_none < cms_shift


def test_fractional_lag_keeps_cms_with_tight_tolerance() -> None:
    # B = A delayed by 1.5 samples (band-limited, so the delay is exact by Fourier shift)
    rng = np.random.default_rng(4)
    n = 700
    a = np.convolve(rng.normal(size=n + 40), np.hanning(9), mode="same")[20 : 20 + n]
    f = np.fft.rfftfreq(n)
    b = np.fft.irfft(np.fft.rfft(a) * np.exp(-2j * np.pi * f * 1.5), n)
    keep = slice(30, n - 30)
    c = compare_signatures(a[keep], b[keep],
                           StriaeCompareParams(match_tolerance_um=1.0), spacing_um=3.0)
    assert c.ccf_max > 0.95
    assert c.non_matches <= 2 and c.cms >= 0.8 * c.matches


@pytest.fixture(scope="module")
def synthetic_bullets() -> tuple[list, list]:
    p = striae_params("realistic", land_length_um=200.0, land_width_um=1200.0)
    barrel = make_barrel("B1", 21, p)
    bullets = [fire_bullet(barrel, s, p) for s in (1, 2)]
    bullets.append(fire_bullet(make_barrel("B2", 22, p), 3, p))
    return bullets, [[lea_signature(s) for s in b.lands] for b in bullets]


def test_bullets_best_phase_is_the_true_one(synthetic_bullets) -> None:
    bullets, sigs = synthetic_bullets
    r = compare_bullets(sigs[0], sigs[1])
    assert r.best_phase == true_phase(bullets[0], bullets[1])
    assert r.ccf.shape == (6, 6) and len(r.phase_scores) == 6
    diff = compare_bullets(sigs[0], sigs[2])
    assert r.sam > diff.sam + 0.15
    d = r.to_dict()
    assert d["best_phase"] == r.best_phase and len(d["best_phase_pairs"]) == 6


def test_bullet_phase_consistency_same_vs_different_barrel(synthetic_bullets) -> None:
    from ballistics.matching.striae.bullets import SCORE_MARGIN_WEIGHT

    _, sigs = synthetic_bullets
    same, diff = compare_bullets(sigs[0], sigs[1]), compare_bullets(sigs[0], sigs[2])
    # one phase of matching lands stands out for the same barrel, none for different barrels
    assert same.phase_margin > 0.15
    assert 0 <= diff.phase_margin < 0.06
    assert same.phase_z > 2 * diff.phase_z > 0
    assert same.score > diff.score
    for r in (same, diff):
        ordered = sorted(r.phase_scores, reverse=True)
        assert r.phase_margin == pytest.approx(ordered[0] - ordered[1])
        assert r.score == pytest.approx(r.sam + SCORE_MARGIN_WEIGHT * r.phase_margin)
        d = r.to_dict()
        assert (d["phase_margin"], d["phase_z"], d["score"]) == (r.phase_margin, r.phase_z,
                                                                r.score)


def test_phase_consistency_numbers() -> None:
    from ballistics.matching.striae import phase_consistency
    from ballistics.matching.striae.bullets import PHASE_SD_FLOOR, SCORE_MARGIN_WEIGHT

    ps = [0.30, 0.62, 0.28, np.nan, 0.34, 0.26]
    margin, z, score = phase_consistency(ps)
    others = np.array([0.34, 0.30, 0.28, 0.26])
    assert margin == pytest.approx(0.62 - 0.34)
    assert z == pytest.approx((0.62 - others.mean()) / others.std(ddof=1))
    assert score == pytest.approx(0.62 + SCORE_MARGIN_WEIGHT * (0.62 - 0.34))
    # identical other phases: the floor keeps z finite
    assert phase_consistency([0.5, 0.3, 0.3, 0.3])[1] == pytest.approx(0.2 / PHASE_SD_FLOOR)
    assert all(np.isnan(v) for v in phase_consistency([0.5, np.nan]))
    assert np.isnan(phase_consistency([0.5, 0.4])[1])


def test_batched_ccf_curves_equal_the_pairwise_ones() -> None:
    from ballistics.matching.striae import ccf_curves

    rng = np.random.default_rng(3)
    a_list = [rng.normal(size=n) for n in (300, 420)]
    b_list = [rng.normal(size=n) for n in (350, 280, 500)]
    a_list[0][[5, 6, 100]] = np.nan
    b_list[2][:40] = np.nan
    out = ccf_curves(a_list, b_list, 150)
    for i, a in enumerate(a_list):
        for j, b in enumerate(b_list):
            lags, r, n = out[i][j]
            assert lags.size == a.size + b.size - 1
            for k in (int(np.nanargmax(r)), int(np.flatnonzero(np.isfinite(r))[0])):
                ai = np.arange(a.size)
                bi = ai + lags[k]
                ok = (bi >= 0) & (bi < b.size)
                x, y = a[ai[ok]], b[bi[ok]]
                both = np.isfinite(x) & np.isfinite(y)
                assert n[k] == both.sum()
                assert r[k] == pytest.approx(np.corrcoef(x[both], y[both])[0, 1], abs=1e-9)
            assert np.all(np.isnan(r[n < 150]))


@pytest.mark.parametrize("drop", [0, 2, 5])
def test_bullet_with_a_missing_land_gets_a_gap(synthetic_bullets, drop) -> None:
    """Five lands against six: the five are placed on the six positions with one gap where
    the missing land was, and the true phase is found over all six positions."""
    bullets, sigs = synthetic_bullets
    five = [s for i, s in enumerate(sigs[1]) if i != drop]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always", ScanWarning)
        r = compare_bullets(sigs[0], five)
    k = true_phase(bullets[0], bullets[1])
    assert r.ccf.shape == (6, 6) and len(r.phase_scores) == 6
    assert len(r.gaps_b) == 1 and r.gaps_a == () and len(r.slots_b) == 5
    gap = r.gaps_b[0]
    assert np.isnan(r.ccf[:, gap]).all() and np.isfinite(np.delete(r.ccf, gap, 1)).all()
    assert any("5 lands, the other 6" in str(x.message) for x in w) and r.warnings
    # the gap position is defined up to the phase (cyclic): what must hold is that the best
    # phase pairs every land of A with its true counterpart of B, and A's land facing the gap
    # is the one whose counterpart is missing
    original = [i for i in range(6) if i != drop]  # B's land of each given signature
    col_of = dict(zip(original, r.slots_b, strict=True))
    for i in range(6):
        col = (i + r.best_phase) % 6
        if (i + k) % 6 == drop:
            assert col == gap
        else:
            assert col == col_of[(i + k) % 6]
    # the other way round: A has five
    r2 = compare_bullets(five, sigs[0])
    assert len(r2.gaps_a) == 1 and r2.gaps_b == () and np.isnan(r2.ccf[r2.gaps_a[0]]).all()
    assert r2.sam == pytest.approx(r.sam)


def test_bullet_land_without_signature_is_a_gap(synthetic_bullets) -> None:
    bullets, sigs = synthetic_bullets
    r = compare_bullets([None, *sigs[0][1:]], sigs[1])
    assert np.isnan(r.ccf[0]).all() and r.best_phase == true_phase(bullets[0], bullets[1])
    assert r.gaps_a == (0,) and r.gaps_b == () and r.to_dict()["gaps_a"] == [0]
    # a missing land and a blank one on the same bullet
    r3 = compare_bullets(sigs[0], [None, *sigs[1][1:5]])
    assert len(r3.gaps_b) == 2 and 0 in r3.gaps_b and r3.ccf.shape == (6, 6)


@pytest.mark.slow
def test_real_hamby44_bullets_one_phase_clearly_best(real_data) -> None:
    from ballistics.io import read_scan

    folder = real_data / "bullets" / "hamby44"
    lands = [[lea_signature(read_scan(p)) for p in sorted((folder / b).glob("*.x3p"))]
             for b in ("bullet1", "bullet2")]
    r = compare_bullets(lands[0], lands[1])
    _assert_batch_equals_pair_by_pair(r, lands[0], lands[1])
    # bullets 1 and 2 of barrel 1: land i of bullet 1 matches land i + 4 of bullet 2
    assert r.best_phase == 4
    inside = np.array([r.ccf[i, (i + 4) % 6] for i in range(6)])
    outside = np.array([r.ccf[i, j] for i in range(6) for j in range(6) if j != (i + 4) % 6])
    assert inside.min() > outside.max() + 0.05  # every matching pair beats all 30 others
    assert r.margin == pytest.approx(inside.min() - outside.max())
    assert r.sam > 0.6 and sorted(r.phase_scores)[-2] < 0.45
    assert r.phase_margin > 0.3 and r.phase_z > 10 and r.score > r.sam


@pytest.mark.slow
@pytest.mark.parametrize("spacing_um", [3.125, 6.25])
def test_real_hamby44_bullets_hold_at_coarser_spacing(real_data, spacing_um) -> None:
    """Lands of other scanners come at 1.5-6.5 µm: Hamby 44 resampled (area average) from
    1.5625 to 3.125 and 6.25 µm keeps the true phase, well clear of the others, and a strong
    bullet score; bullet 2 mirrored (a different source by construction) stays weak."""
    from ballistics.io import read_scan
    from ballistics.matching.bullet_evidence import evaluate_bullets
    from ballistics.preprocess import resample

    folder = real_data / "bullets" / "hamby44"
    scans = [[resample(read_scan(p), spacing_um) for p in sorted((folder / b).glob("*.x3p"))]
             for b in ("bullet1", "bullet2")]
    assert scans[0][0].spacing_um == pytest.approx((spacing_um, spacing_um))
    a = [lea_signature(s) for s in scans[0]]
    b = [lea_signature(s) for s in scans[1]]
    mirrored = [lea_signature(s.with_heights(np.ascontiguousarray(s.heights[:, ::-1]),
                                             s.spacing_um)) for s in scans[1]]
    same, other = compare_bullets(a, b), compare_bullets(a, mirrored)
    assert same.best_phase == 4 and same.phase_margin > 0.3 and same.sam > 0.6
    assert other.phase_margin < 0.1 and other.sam < 0.45
    ev_same, ev_other = evaluate_bullets(same), evaluate_bullets(other)
    assert ev_same.log10_lr > 2 and ev_other.log10_lr < -1


def test_local_correlation_numbers() -> None:
    from ballistics.matching.striae._cms import local_correlation

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=400), rng.normal(size=400)
    assert np.allclose(local_correlation(a, a, 10), 1.0)
    assert np.allclose(local_correlation(a, -a, 10), -1.0)
    assert abs(float(np.median(local_correlation(a, b, 10)))) < 0.15
    assert np.all(local_correlation(a, np.zeros(400), 10) == 0.0)  # flat: no correlation


def test_shape_criterion_rejects_coincident_peaks_of_different_shape() -> None:
    # the same narrow striae every 15 samples, on opposite broad waves: every peak of A has
    # a peak of B at its place, but the neighbourhoods disagree
    x = np.arange(600.0)
    bumps = sum(np.exp(-0.5 * ((x - p) / 1.5) ** 2) for p in range(20, 590, 15))
    wave = 1.5 * np.sin(2 * np.pi * x / 90)
    a, b = bumps + wave, bumps - wave
    *_, m_pos, _ = match_striae(a, b, 1.0, 0.3, lenient_prominence_rq=0.1)
    *_, m_shape, _ = match_striae(a, b, 1.0, 0.3, lenient_prominence_rq=0.1, shape_window=8)
    assert m_pos >= 35 and m_shape <= 15
    # identical signatures keep every stria (38 peaks and 37 valleys)
    assert match_striae(a, a.copy(), 1.0, 0.3, lenient_prominence_rq=0.1,
                        shape_window=8) == (75, 0, 75, 0)


def test_shape_criterion_separates_synthetic_marks() -> None:
    from ballistics.datasets.synthetic.striae import make_mark, make_tool, striae_params
    from ballistics.matching.striae.signatures import extract_signature

    p = striae_params("realistic")
    sigs = []
    for f in range(4):
        tool = make_tool(f"T{f}", 500 + f, p)
        sigs += [(f, extract_signature(make_mark(tool, 70000 + 10 * f + k, p).scan,
                                       kind="aperture-shear")) for k in range(3)]
    new, old = StriaeCompareParams(try_reversed=True), StriaeCompareParams(
        try_reversed=True, shape_window_um=0.0)
    scores: dict[tuple[bool, str], list[int]] = {}
    for i in range(len(sigs)):
        for j in range(i + 1, len(sigs)):
            same = sigs[i][0] == sigs[j][0]
            for tag, prm in (("new", new), ("old", old)):
                c = compare_signatures(sigs[i][1], sigs[j][1], prm)
                scores.setdefault((same, tag), []).append(c.cms)
    print({k: (np.median(v), max(v)) for k, v in scores.items()})
    assert np.mean(scores[(False, "new")]) < np.mean(scores[(False, "old")])
    assert np.median(scores[(True, "new")]) > max(scores[(False, "new")])


def test_batched_extrema_equal_the_per_signature_ones() -> None:
    """One find_peaks pass over arrays laid end to end finds, per array, exactly the peaks,
    valleys, prominences and sub-sample positions of that array searched alone (the
    reference, :func:`_extrema_sets`), edges and plateaus included."""
    from ballistics.matching.striae._cms import _extrema_sets, _extrema_sets_many

    rng = np.random.default_rng(11)
    arrays = [_striae(n, s) for s, n in enumerate((400, 3, 57, 1200, 9))]
    arrays.append(np.round(_striae(300, 9), 1))  # plateaus
    arrays.append(np.linspace(0.0, 1.0, 50))  # monotone: no extrema
    arrays.append(np.r_[5.0, _striae(80, 4), 5.0])  # highest at both ends
    thresholds = [tuple(float(t) for t in rng.uniform(0.0, 1.0, size=2) * np.std(v))
                  for v in arrays]
    batched = _extrema_sets_many(arrays, thresholds)
    assert len(batched) == len(arrays)
    found = 0
    for v, thr, got in zip(arrays, thresholds, batched, strict=True):
        ref = _extrema_sets(v, thr)
        assert len(got) == len(ref) == 2
        for (p1, k1), (p2, k2) in zip(got, ref, strict=True):
            np.testing.assert_array_equal(p1, p2)
            np.testing.assert_array_equal(k1, k2)
            found += p1.size
    assert found > 100
    assert _extrema_sets_many([], []) == []


@pytest.mark.parametrize(("lenient", "gap_fraction", "window"),
                         [(0.0, 0.0, 12), (None, 0.0, 12), (0.25, 0.3, 12), (0.0, 0.0, 0)])
def test_batched_striae_equal_the_pairwise_ones(lenient, gap_fraction, window) -> None:
    """match_striae_sum_many (all pairs' striae matched together) gives, to the last bit,
    what match_striae_sum gives pair by pair: NaN gaps, shifts, a pair shorter than the
    shape window, a pair without extrema and one with nothing to compare included."""
    from ballistics.matching.striae._cms import match_striae_sum, match_striae_sum_many

    rng = np.random.default_rng(5)
    pairs = []
    for s in range(6):
        a = _striae(500, s)
        b = 0.7 * a + 0.5 * _striae(500, 100 + s) if s % 2 else _striae(500, 200 + s)
        a[rng.integers(0, 500, 8)] = np.nan
        b[: 10 * s] = np.nan
        pairs.append((a, b, float(rng.uniform(1.0, 3.0)), float(rng.uniform(-0.5, 0.5))))
    pairs.append((np.full(20, np.nan), _striae(20, 1), 2.0, 0.0))  # nothing to compare
    short = _striae(9, 3)
    pairs.append((short, short + 0.1 * _striae(9, 4), 2.0, 0.2))  # shorter than the window
    pairs.append((np.linspace(0.0, 1.0, 60), _striae(60, 5), 2.0, 0.0))  # A has no extrema
    kw = {"lenient_prominence_rq": lenient, "shape_window": window, "shape_min_corr": 0.5}
    got = match_striae_sum_many(pairs, 1.0, gap_fraction, **kw)
    ref = [match_striae_sum(a, b, tol, 1.0, gap_fraction, shift_b=sh, **kw)
           for a, b, tol, sh in pairs]
    assert got == ref
    assert [type(v) for v in got[0]] == [int, int, int, int, float]
    assert ref[6] == (0, 0, 0, 0, 0.0) and max(r[0] for r in ref) >= 3
    assert ref[8][2] == 0 and ref[8][3] > 0  # no clear stria of A: nothing matches


def _assert_batch_equals_pair_by_pair(r, lands_a, lands_b) -> None:
    """Every land pair of compare_bullets's batch (CCFs of all pairs in one set of FFTs,
    striae of all pairs matched together) equals compare_signatures on that pair alone (the
    reference path): counts exactly, values to 1e-12 (the batched FFTs may round the CCF
    differently, about 1e-15)."""
    counts = ("cms", "cnms", "matches", "non_matches")
    values = ("ccf_max", "lag_um", "overlap_um", "d_um", "d_normalised", "d_abs_um",
              "d_abs_normalised", "sum_peaks", "length_a_um", "length_b_um")
    for i, a in enumerate(lands_a):
        for j, b in enumerate(lands_b):
            got, ref = r.pairs[i][j], compare_signatures(a, b)
            assert got is not None
            assert [getattr(got, k) for k in counts] == [getattr(ref, k) for k in counts]
            for k in values:
                assert getattr(got, k) == pytest.approx(getattr(ref, k), rel=0, abs=1e-12), k
            np.testing.assert_allclose(got.ccf_curve, ref.ccf_curve, rtol=0, atol=1e-12)


def test_bullet_comparison_batch_equals_the_pair_by_pair_path(synthetic_bullets) -> None:
    _, sigs = synthetic_bullets
    r = compare_bullets(sigs[0], sigs[2])
    _assert_batch_equals_pair_by_pair(r, sigs[0], sigs[2])
    assert np.nansum(r.cms) > 0


@pytest.mark.parametrize("difficulty", ["easy", "realistic", "hard"])
def test_bullet_batch_equals_pair_by_pair_at_every_difficulty(difficulty) -> None:
    p = striae_params(difficulty, land_length_um=200.0, land_width_um=1000.0)
    barrel = make_barrel("B1", 41, p)
    bullets = [fire_bullet(barrel, 1, p), fire_bullet(barrel, 2, p),
               fire_bullet(make_barrel("B2", 42, p), 3, p)]
    sigs = [[lea_signature(s) for s in b.lands] for b in bullets]
    for other in (1, 2):  # same barrel, different barrel
        r = compare_bullets(sigs[0], sigs[other])
        _assert_batch_equals_pair_by_pair(r, sigs[0], sigs[other])
        assert np.nansum(r.cms) > 0


@pytest.mark.slow
def test_real_hamby44_bullets_as_other_labs_scan_them(real_data) -> None:
    """docs/striation.md, "Other scanners and labs": bullet 2 with a field of view of 80 % of
    each land's width (grooves partly out of view; score 1.37 before the crosscut fix, now
    about 15) keeps its phase and a strong LR; bullet 2 turned end over end (each land turned
    by 180°, lands in reverse order) is a different source as given, and the orientation
    warning says so; bullet 1 as given against bullet 2 gets no such warning."""
    from ballistics.io import read_scan
    from ballistics.matching.bullet_evidence import evaluate_bullets, orientation_warning

    folder = real_data / "bullets" / "hamby44"
    scans = [[read_scan(p) for p in sorted((folder / b).glob("*.x3p"))]
             for b in ("bullet1", "bullet2")]
    a = [lea_signature(s) for s in scans[0]]

    def cut(s):
        h = np.asarray(s.heights)
        w = int(round(h.shape[1] * 0.8))
        c0 = (h.shape[1] - w) // 2
        return s.replace(heights=np.ascontiguousarray(h[:, c0:c0 + w]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScanWarning)
        narrow = [lea_signature(cut(s)) for s in scans[1]]
    r = compare_bullets(a, narrow)
    ev = evaluate_bullets(r)
    assert r.best_phase == 4 and r.phase_margin > 0.25 and ev.score > 10
    assert ev.log10_lr > 2
    turned = [lea_signature(s.replace(heights=np.ascontiguousarray(
        np.asarray(s.heights)[::-1, ::-1]))) for s in scans[1][::-1]]
    ev_t = evaluate_bullets(compare_bullets(a, turned))
    assert ev_t.log10_lr < 0
    msg = orientation_warning(a, turned, ev_t)
    assert msg is not None and "turned end over end" in msg
    b = [lea_signature(s) for s in scans[1]]
    assert orientation_warning(a, b, evaluate_bullets(compare_bullets(a, b))) is None
