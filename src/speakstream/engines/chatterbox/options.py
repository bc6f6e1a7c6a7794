"""The Chatterbox engine's options, declared once (stdlib only: ``config`` reads the
defaults without importing PyTorch).

The ``chatterbox.*`` settings (``config``) arrive as ``EngineSettings.options`` under
these names; ``tokens_per_char``, ``max_text_chars`` and ``first_chunk_tokens`` are
options only (tests and benchmarks set them), not settings. ``variant`` is ``standard``
(``ChatterboxTTS``) or ``turbo`` (``ChatterboxTurboTTS``); ``cfm_steps`` 0 takes the
variant's own (``CFM_STEPS``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from speakstream.engines.base import EngineLoadError

VARIANTS = ("standard", "turbo")
CFM_STEPS = {"standard": 10, "turbo": 2}  # upstream's flow-matching steps for each


@dataclass(frozen=True, slots=True)
class ChatterboxOptions:
    checkpoint_dir: str = ""
    variant: str = "standard"
    device: str = "auto"
    preload: bool = True  # load the model when the engine is made (false: on first use)
    reference_wav: str = ""
    upload_dir: str = ""
    upload_max_bytes: int = 5_000_000  # the upload endpoint's; unused by the engine
    upload_max_s: float = 30.0  # the upload endpoint's; unused by the engine
    exaggeration: float = 0.5
    cfg_weight: float = 0.5
    temperature: float = 0.8
    max_new_tokens: int = 1000
    tokens_per_char: float = 4.0
    max_text_chars: int = 600
    seed: int = 0  # 0: a fresh random seed per call
    stream: bool = True
    first_chunk_tokens: int = 10
    cfm_steps: int = 0  # 0: the variant's own (CFM_STEPS)

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> ChatterboxOptions:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise EngineLoadError(f"unknown chatterbox options: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in options.items():
            kind = type(getattr(cls(), name))
            try:
                values[name] = kind(value)
            except (TypeError, ValueError):
                raise EngineLoadError(f"chatterbox option {name}: bad value {value!r}") from None
        if values.get("variant", "standard") not in VARIANTS:
            raise EngineLoadError(
                f"chatterbox option variant: {values['variant']!r} is not one of "
                f"{', '.join(VARIANTS)}"
            )
        return cls(**values)

    @property
    def flow_steps(self) -> int:
        """The flow-matching steps per decode: ``cfm_steps``, else the variant's own."""
        return self.cfm_steps or CFM_STEPS[self.variant]
