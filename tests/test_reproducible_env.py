"""CPU results do not depend on the processor's instruction set: ``import ballistics`` makes
MKL (torch's CPU FFTs) take one code path on every x86-64 processor (``MKL_CBWR``), unless
the environment already chose one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = """
import hashlib, json, os, sys
sys.path.insert(0, {repo!r})
import ballistics  # before torch's first FFT: MKL reads MKL_CBWR then
import torch
g = torch.Generator().manual_seed(0)
digests = []
for shape in [(140, 124), (256, 256), (8, 96, 96)]:
    x = torch.randn(*shape, generator=g)
    y = torch.fft.irfft2(torch.fft.rfft2(x) * torch.fft.rfft2(x.flip(-1)), s=x.shape[-2:])
    digests.append(hashlib.sha256(y.numpy().tobytes()).hexdigest())
print(json.dumps({{"cbwr": os.environ.get("MKL_CBWR"), "out": digests}}))
"""


def _run(env_cbwr: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    if env_cbwr is not None:
        env["MKL_CBWR"] = env_cbwr
    out = subprocess.run([sys.executable, "-c", _SCRIPT.format(repo=str(REPO))], env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_sets_one_mkl_code_path_and_keeps_a_given_one() -> None:
    code = "import os, ballistics; print(os.environ.get('MKL_CBWR'))"
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert got == "COMPATIBLE"
    env["MKL_CBWR"] = "AVX2"
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert got == "AVX2"


def test_ffts_are_those_of_the_compatible_code_path() -> None:
    # Without the default, MKL takes its AVX-512 path on processors that have it, and FFT
    # correlations differ in the last bits from the path other processors take (seen on an
    # Intel Xeon: every digest below differed; a comparison's ccf_max 0.17577432 against
    # 0.17577435, and a different-source pair's pose 175 against 178 degrees).
    default = _run(None)
    explicit = _run("COMPATIBLE")
    assert default["cbwr"] == explicit["cbwr"] == "COMPATIBLE"
    assert default["out"] == explicit["out"]
