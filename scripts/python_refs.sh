#!/usr/bin/env bash
# Installs the Python references that tokenizer tests compare against (tiktoken, Hugging Face
# tokenizers) into a virtual environment, build/pyref by default, from the Python package index.
# Pinned versions; idempotent and quiet when they are already there. Prints nothing on success.
# Usage: scripts/python_refs.sh [VENV_DIR]   (scripts/test.sh runs it and sets INKSTONE_REF_PYTHON)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-build/pyref}
requirements=(tiktoken==0.14.0 tokenizers==0.23.3)

python="$venv/bin/python"
installed() {
  [[ -x "$python" ]] && "$python" - "${requirements[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, v in (r.split("==") for r in sys.argv[1:])) else 1)
PY
}
installed && exit 0

# Debian's interpreter, not whichever python3 comes first on PATH: python3-venv is installed for it.
[[ -x "$python" ]] || /usr/bin/python3 -m venv "$venv"
# Wheels only: building tokenizers from source would need a Rust toolchain.
"$python" -m pip install --quiet --disable-pip-version-check --only-binary :all: "${requirements[@]}"
installed || { echo "python_refs: $venv lacks ${requirements[*]} after installing" >&2; exit 1; }
