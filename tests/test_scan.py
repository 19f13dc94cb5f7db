"""The Scan type of ballistics.scan: validation, immutability, derivation."""

from __future__ import annotations

import numpy as np
import pytest

from ballistics.errors import EmptyScanError, ParameterError
from ballistics.scan import Scan, thaw


def _h(rows=5, cols=7):
    h = np.arange(rows * cols, dtype=np.float64).reshape(rows, cols)
    h[1, 2] = np.nan
    return h


def test_basic_properties_non_square():
    s = Scan(_h(), (2.0, 3.0))
    assert s.heights.dtype == np.float32 and s.heights.flags.c_contiguous
    assert s.shape == (5, 7)
    assert s.extent_um == (10.0, 21.0)
    assert s.valid.sum() == 34 and not s.valid[1, 2]
    assert s.missing_fraction == pytest.approx(1 / 35)
    assert s.modality == "topography" and s.provenance == () and not s.is_processed
    assert "shape=(5, 7)" in repr(s)


def test_heights_are_read_only_and_decoupled():
    a = np.zeros((4, 6), np.float32)
    s = Scan(a, 1.0)
    a[0, 0] = 5
    assert s.heights[0, 0] == 0
    with pytest.raises(ValueError):
        s.heights[0, 0] = 1


def test_read_only_view_of_writable_array_is_copied():
    a = np.zeros((4, 6), np.float32)
    v = a.view()
    v.flags.writeable = False
    s = Scan(v, 1.0)
    a[0, 0] = 5
    assert s.heights[0, 0] == 0


def test_own_heights_are_not_copied_again():
    s = Scan(_h(), 1.0)
    assert s.with_step("noop").heights is s.heights


def test_spacing_broadcast_and_validation():
    assert Scan(_h(), 2.5).spacing_um == (2.5, 2.5)
    assert Scan(_h(), (1, 2)).spacing_um == (1.0, 2.0)
    for bad in [(0, 1), (-1, 1), (np.nan, 1), (np.inf, 1), (1, 2, 3), "x"]:
        with pytest.raises(ParameterError):
            Scan(_h(), bad)


def test_shape_validation():
    for bad in [np.zeros((0, 3)), np.zeros((3, 0)), np.zeros(5), np.zeros((2, 2, 2))]:
        with pytest.raises(EmptyScanError):
            Scan(bad, 1.0)


def test_modality_validation():
    assert Scan(_h(), 1.0, modality="image").modality == "image"
    with pytest.raises(ParameterError):
        Scan(_h(), 1.0, modality="photo")


def test_metadata_and_provenance_frozen_and_thawed():
    md = {"a": {"b": [1, 2]}, "c": "x"}
    s = Scan(_h(), 1.0, metadata=md)
    md["a"]["b"].append(3)
    assert thaw(s.metadata) == {"a": {"b": [1, 2]}, "c": "x"}
    with pytest.raises(TypeError):
        s.metadata["c"] = "y"  # type: ignore[index]
    assert Scan(_h(), 1.0, metadata=None).metadata == {}


def test_with_step_and_is_processed():
    s = Scan(_h(), 1.0)
    new = np.ones((3, 4))
    t = s.with_step("level", {"order": 1}, {"plane": (0.5, 0.1)}, heights=new, spacing_um=2.0)
    assert t.shape == (3, 4) and t.spacing_um == (2.0, 2.0)
    assert s.shape == (5, 7) and s.provenance == ()
    step = thaw(t.provenance[0])
    assert step["name"] == "level" and step["params"] == {"order": 1}
    assert step["fitted"] == {"plane": [0.5, 0.1]} and step["producer"] == "ballistics"
    assert not t.is_processed and t.with_step("preprocess").is_processed


def test_with_warnings_dedupes():
    s = Scan(_h(), 1.0).with_warnings("a", "b", "a")
    assert s.warnings == ("a", "b")
    assert s.with_warnings("a") is s
    assert s.with_warnings("c").warnings == ("a", "b", "c")


def test_replace_and_with_heights():
    s = Scan(_h(), (1.0, 2.0), sha256="f" * 64, source="x.x3p")
    t = s.with_heights(np.zeros((2, 3)))
    assert t.spacing_um == (1.0, 2.0) and t.sha256 == s.sha256 and t.source == "x.x3p"
    assert s.replace(modality="image").modality == "image"


def test_pickle_and_deepcopy_round_trip():
    import copy
    import pickle

    h = np.arange(35, dtype=np.float32).reshape(5, 7)
    h[1, 2] = np.nan
    s = Scan(h, (1.0, 2.0), "image", metadata={"a": {"b": [1, 2]}}, sha256="e" * 64,
             warnings=("w",), source="x.png").with_step("preprocess", {"preset": "p"})
    for t in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        assert t.shape == (5, 7) and t.spacing_um == (1.0, 2.0) and t.modality == "image"
        assert np.array_equal(t.heights, s.heights, equal_nan=True)
        assert not t.heights.flags.writeable
        assert thaw(t.metadata) == thaw(s.metadata) and thaw(t.provenance) == thaw(s.provenance)
        assert (t.sha256, t.warnings, t.source) == (s.sha256, s.warnings, s.source)
        assert t.is_processed
        with pytest.raises(TypeError):
            t.metadata["a"] = 1  # type: ignore[index]
