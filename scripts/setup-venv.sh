#!/usr/bin/env bash
# Creates a virtual environment (Python 3.11+; .venv, or the directory in VENV) and
# installs speakstream into it with the given extras. Run by serve.sh and test.sh (which
# also builds VENV=.venv-chatterbox for the Chatterbox tests: that extra pins packages
# the dev extra cannot share). Safe to run again (pip skips what is already there) and
# safe to run twice at once (serve.sh and test.sh in two shells): one waits for the other
# on a lock (<venv>.lock, with flock where util-linux has it).
# Extras naming chatterbox ("[chatterbox]", "[dev,chatterbox]") also install the parts
# of the Chatterbox engine that pip cannot resolve from the extra (docs/chatterbox.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="${1:-}"
VENV="${VENV:-.venv}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "speakstream needs Python 3.11 or newer")'
if command -v flock >/dev/null 2>&1; then
  exec 9>"$VENV.lock"
  flock 9
fi
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  "$PYTHON" -m venv "$VENV"
  "$PY" -m pip install --quiet --upgrade pip
fi
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)
case "$EXTRAS" in
  *chatterbox*)
    # PyTorch first, or the extra's dependencies (resemble-perth, conformer) let pip pick
    # the newest torch, a CUDA build with GBs of nvidia-* packages. Kept if one is
    # installed (a GPU machine installs its CUDA build first); else the CPU build
    # (TORCH_SPEC to choose another).
    if ! "$PY" -c 'import torch' 2>/dev/null; then
      "${PIP[@]}" "${TORCH_SPEC:-torch==2.13.0}"
    fi
    ;;
esac
"${PIP[@]}" -e ".${EXTRAS}"

case "$EXTRAS" in
  *chatterbox*)
    # torchaudio: chatterbox uses only its pure-Python resampler and Kaldi filterbank.
    # PyPI's wheel carries compiled ops built for one torch (and CUDA); where they do not
    # load with the installed torch they are removed and the pure-Python parts remain.
    if ! "$PY" -c 'import torchaudio' 2>/dev/null; then
      "${PIP[@]}" --no-deps "${TORCHAUDIO_SPEC:-torchaudio==2.11.0}"
      if ! "$PY" -c 'import torchaudio' 2>/dev/null; then
        lib_dir="$("$PY" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("torchaudio").origin).parent / "lib")')"
        rm -f "$lib_dir"/*.so
        "$PY" -c 'import torchaudio.compliance.kaldi, torchaudio.transforms'
      fi
    fi
    # chatterbox-tts and s3tokenizer without their pins (torch 2.6, gradio, pre-commit);
    # their real dependencies come with the extra.
    "${PIP[@]}" --no-deps "chatterbox-tts==0.1.7" "s3tokenizer==0.3.0"
    ;;
esac
