#!/usr/bin/env bash
# Run HERE (the dev machine) before a GPU run: packs Node.js (.device/node.xz) and a slim
# production node_modules (.device/nm/node_modules, ~19 MB: no vega/resvg, plots are rendered here
# from the JSON) and records the commit, all under the git-ignored .device/.
# Then call the device tool with carry [".device"] and the command
#   bash scripts/gpu-run.sh            (see that file for what it runs and what lands in $OUT)
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
mkdir -p .git/info
bash ../shared/gpu-host/pack-node.sh
if [[ ! -d .device/nm/node_modules || package-lock.json -nt .device/nm/node_modules ]]; then
  rm -rf .device/nm && mkdir -p .device/nm
  cp package.json package-lock.json .device/nm/
  (cd .device/nm && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
  (cd .device/nm/node_modules && rm -rf vega* d3* @resvg yargs topojson-client delaunator robust-predicates)
fi
git rev-parse HEAD > .device/commit
if ! git diff --quiet HEAD -- src test scripts; then echo "note: uncommitted changes under src/test/scripts travel too" >&2; fi
du -sh .device
