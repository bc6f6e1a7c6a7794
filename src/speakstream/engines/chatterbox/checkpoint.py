"""A Chatterbox checkpoint directory: which files, which device, one loaded model.

``missing_files(dir)`` names what is absent; ``load_model(dir, device)`` checks first
(``EngineLoadError`` naming each missing file and where to put it), then builds the
real modules (``VoiceEncoder``, ``T3``, ``S3Gen``) and loads their weights from local
files only: never ``from_pretrained``, never a download. T3's layer count is read from
the checkpoint's own tensor names, so a cut-down (e.g. 2-layer test) checkpoint of the
same architecture loads through the same path. ``resolve_device`` turns
``auto|cpu|cuda|cuda:N|mps`` into a device that exists, or says why not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from speakstream.engines.base import EngineLoadError

REQUIRED_FILES = ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json")
BUILTIN_VOICE_FILE = "conds.pt"  # optional: the checkpoint's own voice
FULL_T3_LAYERS = 30
_T3_LAYER = re.compile(r"^tfmr\.layers\.(\d+)\.")
HOW_TO_GET = (
    "download them once from the Hugging Face repository ResembleAI/chatterbox "
    "(see docs/chatterbox.md) and set chatterbox.checkpoint_dir "
    "(SPEAKSTREAM_CHATTERBOX_CHECKPOINT_DIR) to their directory"
)


def missing_files(checkpoint_dir: Path) -> list[str]:
    return [name for name in REQUIRED_FILES if not (checkpoint_dir / name).is_file()]


def check_checkpoint_dir(checkpoint_dir: str | Path | None) -> Path:
    """The directory, if it holds every required file; else ``EngineLoadError``."""
    if not checkpoint_dir:
        raise EngineLoadError(
            "the chatterbox engine needs a checkpoint directory with "
            f"{', '.join(REQUIRED_FILES)} (and optionally {BUILTIN_VOICE_FILE}): {HOW_TO_GET}"
        )
    path = Path(checkpoint_dir).expanduser()
    if not path.is_dir():
        raise EngineLoadError(
            f"chatterbox checkpoint directory {path} does not exist: {HOW_TO_GET}"
        )
    missing = missing_files(path)
    if missing:
        raise EngineLoadError(
            f"chatterbox checkpoint directory {path} lacks {', '.join(missing)}: {HOW_TO_GET}"
        )
    return path


def resolve_device(requested: str) -> str:
    """``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    name = requested.strip().lower() or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cpu":
        return name
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise EngineLoadError("chatterbox.device is 'mps' but MPS is not available here")
        return name
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise EngineLoadError(
            f"chatterbox.device {requested!r} is not one of auto, cpu, cuda, cuda:N, mps"
        )
    if not torch.cuda.is_available():
        raise EngineLoadError(f"chatterbox.device is {requested!r} but CUDA is not available here")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise EngineLoadError(
            f"chatterbox.device is {requested!r} but there are {torch.cuda.device_count()} "
            "CUDA devices"
        )
    return name


@dataclass
class ChatterboxModel:
    """The loaded modules of one checkpoint, on one device (``t3``, ``s3gen``, ``ve`` are
    chatterbox's ``T3``, ``S3Gen`` and ``VoiceEncoder``; ``tokenizer`` its
    ``EnTokenizer``; ``builtin_conds`` its ``Conditionals`` from ``conds.pt``)."""

    t3: Any
    s3gen: Any
    ve: Any
    tokenizer: Any
    device: str
    builtin_conds: Any | None
    t3_layers: int


def t3_layer_count(state: dict[str, torch.Tensor]) -> int:
    layers = {int(m.group(1)) for key in state if (m := _T3_LAYER.match(key))}
    if not layers:
        raise EngineLoadError("t3_cfg.safetensors has no transformer layers (tfmr.layers.N.*)")
    return max(layers) + 1


def t3_config(layers: int) -> Any:
    """Chatterbox's English T3 configuration with ``layers`` transformer layers."""
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
    from chatterbox.models.t3.modules.t3_config import T3Config

    hp = T3Config.english_only()
    if layers != FULL_T3_LAYERS:
        name = f"{hp.llama_config_name}_{layers}_layers"
        LLAMA_CONFIGS.setdefault(
            name, {**LLAMA_CONFIGS[hp.llama_config_name], "num_hidden_layers": layers}
        )
        hp.llama_config_name = name
    return hp


def load_model(checkpoint_dir: str | Path | None, device: str) -> ChatterboxModel:
    """Check the directory, then load every module on ``resolve_device(device)``."""
    path = check_checkpoint_dir(checkpoint_dir)
    device = resolve_device(device)
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.tokenizers import EnTokenizer
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.tts import Conditionals
    from safetensors.torch import load_file

    try:
        ve = VoiceEncoder()
        ve.load_state_dict(load_file(path / "ve.safetensors"))
        ve.to(device).eval()
        t3_state: Any = load_file(path / "t3_cfg.safetensors")
        if "model" in t3_state:
            t3_state = t3_state["model"][0]
        layers = t3_layer_count(t3_state)
        t3 = T3(t3_config(layers))
        t3.load_state_dict(t3_state)
        t3.to(device).eval()
        s3gen = S3Gen()
        s3gen.load_state_dict(load_file(path / "s3gen.safetensors"), strict=False)
        s3gen.to(device).eval()
        tokenizer = EnTokenizer(str(path / "tokenizer.json"))
        conds = None
        if (path / BUILTIN_VOICE_FILE).is_file():
            conds = Conditionals.load(path / BUILTIN_VOICE_FILE, map_location="cpu").to(device)
    except EngineLoadError:
        raise
    except Exception as exc:  # a corrupt or mismatched file: say which directory
        raise EngineLoadError(f"cannot load the chatterbox checkpoint in {path}: {exc}") from exc
    return ChatterboxModel(t3, s3gen, ve, tokenizer, device, conds, layers)
