#!/usr/bin/env bash
# Fetch, on this machine, the wheels that the lent GPU machines' image lacks (it has torch,
# numpy, scipy, OpenCV, h5py, scikit-learn, matplotlib, tqdm, click, filelock, pytest,
# hypothesis; it reaches no package index). They go to .whl/ (ignored by git), which the
# device tool carries: run(command="bash scripts/device_check.sh", carry=[".whl"]).
# The image's python3 is CPython 3.12 on x86-64 (see the device tool's KINDS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64 any; do
  plat+=(--platform "$p")
done
# the package's own needs that the image lacks, then dask.distributed's (the cluster tests)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${plat[@]}" -d .whl \
  faiss-cpu x3pio defusedxml \
  dask distributed partd locket tblib tornado zict importlib_metadata
ls -1 .whl
