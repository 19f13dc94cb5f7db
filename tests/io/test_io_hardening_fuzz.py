"""Bounded fuzz run of the hardened X3P reader: byte mutations of a small valid X3P with an
x3ptools mask layer, read with and without ``verify``/``strict``; only ``BallisticsError``
(or success) comes out, and no library warning. Skipped without hypothesis."""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image
from x3p_builders import main_xml, md5, surface

from ballistics.errors import BallisticsError, ScanWarning
from ballistics.io import read_scan

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

MASK_XML = ("<Mask><Background>#cd7f32</Background><Annotations>"
            '<Annotation color="#629d4b">right groove</Annotation></Annotations></Mask>')


def _mask_png(rows: int, cols: int, annotated_cols: int) -> bytes:
    rgb = np.zeros((rows, cols, 3), np.uint8)
    rgb[:] = (0xCD, 0x7F, 0x32)
    rgb[:, :annotated_cols] = (0x62, 0x9D, 0x4B)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()




def _seed_with_mask() -> bytes:
    z = surface(12, 16)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        xml = main_xml(size_x=16, size_y=12, data_md5=md5(z.astype("<f8").tobytes()),
                       extra_record3=MASK_XML).encode()
        zf.writestr("main.xml", xml)
        zf.writestr("md5checksum.hex", f"{md5(xml)} *main.xml\n")
        zf.writestr("bindata/data.bin", z.astype("<f8").tobytes())
        zf.writestr("bindata/mask.png", _mask_png(12, 16, 3))
    return buf.getvalue()


SEED = _seed_with_mask()


@settings(max_examples=200, deadline=800, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(muts=st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)),
                     min_size=1, max_size=6),
       strict=st.booleans(), verify=st.booleans())
def test_fuzz_x3p_with_mask_strict_and_verify(tmp_path, muts, strict, verify):
    data = bytearray(SEED)
    for pos, val in muts:
        data[pos] = val
    path = tmp_path / "f.x3p"
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stray library warning fails the test ...
        warnings.simplefilter("ignore", ScanWarning)  # ... ours are expected
        try:
            read_scan(path, strict=strict and verify, verify=verify)
        except BallisticsError:
            pass
