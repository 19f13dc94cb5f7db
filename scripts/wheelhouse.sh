#!/usr/bin/env bash
# Download forensic-ballistics and all its dependencies (CPU torch) into a wheelhouse folder,
# for installing on a machine without internet access (see docs/install.md):
#   scripts/wheelhouse.sh DIR [EXTRA_PIP_DOWNLOAD_ARGS...]
# then, offline:
#   pip install --no-index --find-links DIR torch==2.13.0
#   pip install --no-index --find-links DIR forensic-ballistics
set -euo pipefail

dir="${1:-wheelhouse}"
shift || true
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
dist="${DIST:-forensic-ballistics}"

mkdir -p "$dir"
python3 -m pip download -d "$dir" "$@" "$torch_spec" "$dist"
echo "wheelhouse ready in $dir: copy it to the offline machine and run" >&2
echo "  pip install --no-index --find-links $dir $torch_spec && pip install --no-index --find-links $dir $dist" >&2
