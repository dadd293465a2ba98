#!/usr/bin/env bash
# ruff (style, imports, pyflakes) and mypy (types) over the package, with the settings in pyproject.toml
# ([tool.ruff], [tool.mypy]). Exits non-zero on any finding. Run from anywhere; uses .venv when present.
set -euo pipefail

cd "$(dirname "$0")/.."
bin=".venv/bin"
[[ -x "$bin/ruff" && -x "$bin/mypy" ]] || bin="$(dirname "$(command -v ruff)")"

# The package's folders (pyproject.toml package-dir): pintext/ (with cli/, serving/, servers/), trainer/,
# ingest/ and bench/; and scripts/ (the README's figures script is typed too).
status=0
echo "ruff check pintext trainer ingest bench scripts"
"$bin/ruff" check pintext trainer ingest bench scripts || status=1
echo "mypy (files from [tool.mypy])"
"$bin/mypy" || status=1
echo "mypy scripts/readme_figures.py"
"$bin/mypy" scripts/readme_figures.py || status=1
exit "$status"
