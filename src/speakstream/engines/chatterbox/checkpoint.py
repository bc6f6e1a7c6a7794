"""A Chatterbox checkpoint directory: which files, which device, one loaded model.

Two variants (``options.VARIANTS``), each with its own files (``REQUIRED_FILES``):
``standard`` (``ChatterboxTTS``: a 30-layer Llama T3, S3Gen with 10 flow-matching steps,
a character tokenizer.json) and ``turbo`` (``ChatterboxTurboTTS``: a 24-layer GPT-2
Medium T3, S3Gen's meanflow decoder, 2 steps, and GPT-2's BPE tokenizer, read by
``transformers.AutoTokenizer`` from the directory with ``local_files_only``).
``missing_files(dir, variant)`` names what is absent; ``load_model(dir, device,
variant)`` checks first (``EngineLoadError`` naming each missing file and where to put
it), then builds the real modules (``VoiceEncoder``, ``T3``, ``S3Gen``) and loads their
weights from local files only: never ``from_pretrained`` of a model, never a download
(``chatterbox.tts_turbo`` is not even imported: it imports ``snapshot_download``).
T3's layer count is read from the checkpoint's own tensor names, so a cut-down (e.g.
2-layer test) checkpoint of the same architecture loads through the same path.
``resolve_device`` turns ``auto|cpu|cuda|cuda:N|mps`` into a device that exists, or
says why not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from speakstream.engines.base import EngineLoadError

REQUIRED_FILES = {
    "standard": ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json"),
    "turbo": (
        "ve.safetensors",
        "t3_turbo_v1.safetensors",
        "s3gen_meanflow.safetensors",
        "vocab.json",
        "merges.txt",
    ),
}
BUILTIN_VOICE_FILE = "conds.pt"  # optional: the checkpoint's own voice
FULL_T3_LAYERS = {"standard": 30, "turbo": 24}
_T3_LAYER = re.compile(r"^tfmr\.(?:layers|h)\.(\d+)\.")  # Llama's, GPT-2's
REPOSITORIES = {"standard": "ResembleAI/chatterbox", "turbo": "ResembleAI/chatterbox-turbo"}
TURBO_TEXT_VOCAB = 50276  # GPT-2's tokenizer and turbo's added tokens
TURBO_SPEECH_VOCAB = 6563
TURBO_PROMPT_TOKENS = 375  # 15 s of the reference, at 25 tokens a second


def how_to_get(variant: str) -> str:
    return (
        f"download them once from the Hugging Face repository {REPOSITORIES[variant]} "
        "(see docs/chatterbox.md) and set chatterbox.checkpoint_dir "
        "(SPEAKSTREAM_CHATTERBOX_CHECKPOINT_DIR) to their directory"
    )


def missing_files(checkpoint_dir: Path, variant: str = "standard") -> list[str]:
    return [name for name in REQUIRED_FILES[variant] if not (checkpoint_dir / name).is_file()]


def check_checkpoint_dir(checkpoint_dir: str | Path | None, variant: str = "standard") -> Path:
    """The directory, if it holds every file ``variant`` needs; else ``EngineLoadError``."""
    required = REQUIRED_FILES[variant]
    if not checkpoint_dir:
        raise EngineLoadError(
            f"the chatterbox engine ({variant}) needs a checkpoint directory with "
            f"{', '.join(required)} (and optionally {BUILTIN_VOICE_FILE}): {how_to_get(variant)}"
        )
    path = Path(checkpoint_dir).expanduser()
    if not path.is_dir():
        raise EngineLoadError(
            f"chatterbox checkpoint directory {path} does not exist: {how_to_get(variant)}"
        )
    missing = missing_files(path, variant)
    if missing:
        raise EngineLoadError(
            f"chatterbox checkpoint directory {path} lacks {', '.join(missing)} "
            f"(chatterbox.variant {variant}): {how_to_get(variant)}"
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
    variant: str = "standard"

    @property
    def encoder_cond_s(self) -> int:
        """Seconds of a reference recording that T3's speech prompt is made from
        (upstream's ``ENC_COND_LEN``: 6 s, turbo 15 s)."""
        return 15 if self.variant == "turbo" else 6


def t3_layer_count(state: dict[str, torch.Tensor]) -> int:
    layers = {int(m.group(1)) for key in state if (m := _T3_LAYER.match(key))}
    if not layers:
        raise EngineLoadError(
            "T3's checkpoint has no transformer layers (tfmr.layers.N.*, tfmr.h.N.*)"
        )
    return max(layers) + 1


def t3_config(layers: int, variant: str = "standard") -> Any:
    """Chatterbox's English T3 configuration (``variant``'s) with ``layers`` layers;
    turbo's is ``ChatterboxTurboTTS.from_local``'s."""
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
    from chatterbox.models.t3.modules.t3_config import T3Config

    if variant == "turbo":
        hp = T3Config(text_tokens_dict_size=TURBO_TEXT_VOCAB)
        hp.llama_config_name = "GPT2_medium"
        hp.speech_tokens_dict_size = TURBO_SPEECH_VOCAB
        hp.input_pos_emb = None
        hp.speech_cond_prompt_len = TURBO_PROMPT_TOKENS
        hp.use_perceiver_resampler = False
        hp.emotion_adv = False
        layer_key = "n_layer"
    else:
        hp = T3Config.english_only()
        layer_key = "num_hidden_layers"
    if layers != FULL_T3_LAYERS[variant]:
        name = f"{hp.llama_config_name}_{layers}_layers"
        LLAMA_CONFIGS.setdefault(name, {**LLAMA_CONFIGS[hp.llama_config_name], layer_key: layers})
        hp.llama_config_name = name
    return hp


class TurboTokenizer:
    """GPT-2's tokenizer (``transformers``) with ``EnTokenizer``'s ``text_to_tokens``."""

    def __init__(self, path: Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)

    def text_to_tokens(self, text: str) -> torch.Tensor:
        ids: torch.Tensor = self.tokenizer(text, return_tensors="pt").input_ids
        return ids


def load_model(
    checkpoint_dir: str | Path | None, device: str, variant: str = "standard"
) -> ChatterboxModel:
    """Check the directory, then load every module on ``resolve_device(device)``."""
    path = check_checkpoint_dir(checkpoint_dir, variant)
    device = resolve_device(device)
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.tokenizers import EnTokenizer
    from chatterbox.models.voice_encoder import VoiceEncoder
    from chatterbox.tts import Conditionals
    from safetensors.torch import load_file

    turbo = variant == "turbo"
    t3_file, s3gen_file = REQUIRED_FILES[variant][1:3]
    try:
        ve = VoiceEncoder()
        ve.load_state_dict(load_file(path / "ve.safetensors"))
        ve.to(device).eval()
        t3_state: Any = load_file(path / t3_file)
        if "model" in t3_state:
            t3_state = t3_state["model"][0]
        layers = t3_layer_count(t3_state)
        t3 = T3(t3_config(layers, variant))
        t3.load_state_dict(t3_state)
        del t3_state
        if turbo:
            del t3.tfmr.wte  # GPT-2's own token embedding: T3 feeds it embeddings
        t3.to(device).eval()
        s3gen = S3Gen(meanflow=turbo)
        s3gen.load_state_dict(load_file(path / s3gen_file), strict=turbo)
        s3gen.to(device).eval()
        tokenizer = TurboTokenizer(path) if turbo else EnTokenizer(str(path / "tokenizer.json"))
        conds = None
        if (path / BUILTIN_VOICE_FILE).is_file():
            conds = Conditionals.load(path / BUILTIN_VOICE_FILE, map_location="cpu").to(device)
    except EngineLoadError:
        raise
    except Exception as exc:  # a corrupt or mismatched file: say which directory
        raise EngineLoadError(
            f"cannot load the chatterbox {variant} checkpoint in {path}: {exc}"
        ) from exc
    return ChatterboxModel(t3, s3gen, ve, tokenizer, device, conds, layers, variant)
