#!/usr/bin/env bash
# Download forensic-ballistics and all its dependencies (CPU torch) into a wheelhouse folder,
# for installing on a machine without internet access (see docs/install.md, "Offline labs"):
#
#   scripts/wheelhouse.sh DIR [EXTRA_PIP_DOWNLOAD_ARGS...]
#
# By default the package's own wheel is built from this checkout (pip wheel --no-deps) and
# pip downloads what that wheel and torch need; DIST=forensic-ballistics (or any requirement)
# downloads the package from the index instead. TORCH_SPEC (default torch==2.13.0) names the
# torch build; on Linux, PyPI's torch is the CUDA build (GBs): to get the CPU one, pass
# `--extra-index-url https://download.pytorch.org/whl/cpu` and TORCH_SPEC=torch==2.13.0+cpu.
# Then, on the offline machine:
#   pip install --no-index --find-links DIR torch==2.13.0
#   pip install --no-index --find-links DIR forensic-ballistics
# .ci/wheelhouse-check runs this script and that installation into a fresh venv.
set -euo pipefail

dir="${1:-wheelhouse}"
shift || true
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
repo="$(cd "$(dirname "$0")/.." && pwd)"

mkdir -p "$dir"
if [ -n "${DIST:-}" ]; then
  dist=$DIST
else
  # build the wheel (setuptools from the index, in pip's isolated build environment)
  python3 -m pip wheel -q --no-deps -w "$dir" "$repo"
  dist=$(ls -t "$dir"/forensic_ballistics-*.whl | head -n 1)
fi
python3 -m pip download -q -d "$dir" "$@" "$torch_spec" "$dist"
size=$(du -sh "$dir" | cut -f1)
echo "wheelhouse ready in $dir ($size, $(ls "$dir" | wc -l) files): copy it to the offline machine and run" >&2
echo "  pip install --no-index --find-links $dir $torch_spec && pip install --no-index --find-links $dir forensic-ballistics" >&2
