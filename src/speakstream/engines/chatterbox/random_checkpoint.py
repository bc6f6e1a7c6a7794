"""A random-weight Chatterbox checkpoint of the real architecture, for tests and benchmarks.

``python -m speakstream.engines.chatterbox.random_checkpoint OUT_DIR [--t3-layers 2]
[--seed 0] [--prompt-s 4] [--variant standard|turbo] [--forbid-network]`` builds
chatterbox's real ``VoiceEncoder``, ``T3`` (cut to ``--t3-layers`` of its 30 Llama
layers; turbo: of its 24 GPT-2 Medium layers) and ``S3Gen`` (turbo: its meanflow
decoder) with their initial random weights, (T3's speech head sharpened and its stop
token silenced, see ``build``) writes them as the files ``load_model`` reads for that
variant, a tokenizer (standard: a character-level ``tokenizer.json`` with chatterbox's
special tokens; turbo: a byte-level GPT-2 ``vocab.json`` and ``merges.txt`` with no
merges, 257 of its 50276 ids), and ``conds.pt`` made by the same code that clones a voice
from a synthetic 4-second recording, its S3Gen prompt cut to ``--prompt-s`` seconds
(the decoder's cost grows with the prompt: tests use 1 s; a real ``conds.pt`` has 10).
No file is downloaded; ``--forbid-network`` makes
any connection attempt in the process fail, so a hidden download would be an error.
It speaks noise, not words: it checks the plumbing, never the quality. About 4 GB of
memory at its peak; tens of seconds on two cores.
"""

from __future__ import annotations

import argparse
import json
import socket
import string
import wave
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from speakstream.engines.chatterbox.checkpoint import BUILTIN_VOICE_FILE, REQUIRED_FILES

SYNTHETIC_VOICE_S = 4.0
SYNTHETIC_RATE_HZ = 24_000


def forbid_network() -> None:
    """Make every outgoing connection (and name lookup) in this process raise."""

    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise OSError("network access is forbidden while building a test checkpoint")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse
    socket.getaddrinfo = refuse


def tokenizer_json() -> dict[str, Any]:
    """A character-level tokenizer in the ``tokenizers`` JSON format with chatterbox's
    special tokens (``[START]``, ``[STOP]``, ``[SPACE]``...) and ids below 704."""
    specials = ["[STOP]", "[UNK]", "[SPACE]", "[PAD]", "[SEP]", "[CLS]", "[MASK]"]
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(specials)}
    vocab["[START]"] = 255
    chars = string.ascii_letters + string.digits + string.punctuation
    next_id = len(specials)
    for ch in chars:
        if next_id == 255:
            next_id += 1
        vocab[ch] = next_id
        next_id += 1
    added = [
        {
            "id": vocab[tok],
            "content": tok,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for tok in [*specials, "[START]"]
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": None,
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "[UNK]",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [],
        },
    }


def write_gpt2_tokenizer(out_dir: Path) -> None:
    """GPT-2's byte-level BPE files (``vocab.json``, ``merges.txt``) with the 256 byte
    symbols and ``<|endoftext|>``, no merges, and a ``tokenizer_config.json`` naming
    GPT-2's tokenizer: what ``AutoTokenizer`` reads from a turbo checkpoint."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    vocab = {symbols[b]: b for b in range(256)}
    vocab["<|endoftext|>"] = 256
    (out_dir / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "add_prefix_space": False,
        "model_max_length": 8196,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def write_synthetic_voice(path: Path, seed: int) -> None:
    """A voiced, wobbling 4-second tone with a little noise: something to clone."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SYNTHETIC_VOICE_S * SYNTHETIC_RATE_HZ)) / SYNTHETIC_RATE_HZ
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SYNTHETIC_RATE_HZ
    audio = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2
    audio = audio * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t) ** 2) + 0.01 * rng.standard_normal(
        t.size
    )
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SYNTHETIC_RATE_HZ)
        out.writeframes(pcm.tobytes())


def build(
    out_dir: Path,
    *,
    t3_layers: int = 2,
    seed: int = 0,
    prompt_s: float = SYNTHETIC_VOICE_S,
    variant: str = "standard",
) -> Path:
    import torch
    from chatterbox.models.s3gen import S3Gen
    from chatterbox.models.t3 import T3
    from chatterbox.models.voice_encoder import VoiceEncoder
    from safetensors.torch import save_file

    from speakstream.engines.chatterbox.checkpoint import load_model, t3_config
    from speakstream.engines.chatterbox.voices import conditionals_from_wav

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    turbo = variant == "turbo"
    t3 = T3(t3_config(t3_layers, variant))
    with torch.no_grad():
        # A trained head gives peaked token distributions that follow the conditioning;
        # initial weights give nearly uniform ones that ignore it. Sharpen it, and zero
        # the stop token's row (and turbo's biases): the random model never stops, its
        # token bound decides.
        t3.speech_head.weight.normal_(0.0, 0.2)
        t3.speech_head.weight[t3.hp.stop_speech_token].zero_()
        if t3.speech_head.bias is not None:
            t3.speech_head.bias.zero_()
    ve_file, t3_file, s3gen_file = REQUIRED_FILES[variant][:3]
    for name, module in (
        (ve_file, VoiceEncoder()),
        (t3_file, t3),
        (s3gen_file, S3Gen(meanflow=turbo)),
    ):
        state = {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}
        save_file(state, str(out_dir / name))
        del state
    del t3, module
    if turbo:
        write_gpt2_tokenizer(out_dir)
    else:
        (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer_json()), encoding="utf-8")
    voice_wav = out_dir / "synthetic_voice.wav"
    write_synthetic_voice(voice_wav, seed)
    model = load_model(out_dir, "cpu", variant)
    conds = conditionals_from_wav(model, voice_wav)
    prompt_tokens = max(1, round(prompt_s * 25))  # 25 tokens, 50 mel frames a second
    conds.gen["prompt_token"] = conds.gen["prompt_token"][:, :prompt_tokens]
    conds.gen["prompt_token_len"] = torch.tensor([conds.gen["prompt_token"].shape[1]])
    conds.gen["prompt_feat"] = conds.gen["prompt_feat"][:, : 2 * prompt_tokens]
    conds.save(out_dir / BUILTIN_VOICE_FILE)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--t3-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt-s", type=float, default=SYNTHETIC_VOICE_S)
    parser.add_argument("--variant", choices=("standard", "turbo"), default="standard")
    parser.add_argument("--forbid-network", action="store_true")
    args = parser.parse_args(argv)
    if args.forbid_network:
        forbid_network()
    build(
        args.out_dir,
        t3_layers=args.t3_layers,
        seed=args.seed,
        prompt_s=args.prompt_s,
        variant=args.variant,
    )
    print(args.out_dir)


if __name__ == "__main__":
    main()
