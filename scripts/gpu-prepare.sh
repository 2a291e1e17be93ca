#!/usr/bin/env bash
# Run HERE (the dev machine) before a GPU run: packs Node.js (.device/node.xz) and a slim
# production node_modules (.device/nm/node_modules, ~19 MB: no vega/resvg, plots are rendered here
# from the JSON) and records the commit, all under the git-ignored .device/.
# Then call the device tool with carry [".device"] and the command
#   bash scripts/gpu-run.sh            (see that file for what it runs and what lands in $OUT)
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
if [[ -f .git ]]; then
  # a linked worktree (.git is a file): pack-node.sh writes .git/info/exclude, so take the main
  # checkout's packed Node instead (.device/ is in .gitignore either way)
  main=$(dirname "$(git rev-parse --path-format=absolute --git-common-dir)")
  if [[ ! -f $main/.device/node.xz ]]; then echo "gpu-prepare: a worktree; run scripts/gpu-prepare.sh in $main first" >&2; exit 2; fi
  mkdir -p .device && cp "$main/.device/node.xz" "$main/.device/unpack-node.sh" .device/
else
  mkdir -p .git/info
  bash ../shared/gpu-host/pack-node.sh
fi
if [[ ! -d .device/nm/node_modules || package-lock.json -nt .device/nm/node_modules ]]; then
  rm -rf .device/nm && mkdir -p .device/nm
  cp package.json package-lock.json .device/nm/
  (cd .device/nm && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
  (cd .device/nm/node_modules && rm -rf vega* d3* @resvg yargs topojson-client delaunator robust-predicates)
fi
git rev-parse HEAD > .device/commit
if ! git diff --quiet HEAD -- src test scripts; then echo "note: uncommitted changes under src/test/scripts travel too" >&2; fi
du -sh .device
