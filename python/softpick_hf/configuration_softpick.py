"""The configuration of a softpick.cpp model in transformers: a LlamaConfig plus the attention settings.

`softpick export` writes these keys into config.json (docs/interop.md):

    softpick_attention       "softpick" | "rectified" | "softmax1" | "sink" | "softmax": the normaliser
    softpick_ssmax           scaled attention (SSMax): q at position t is multiplied by s_h * log(t + 2)
    softpick_ssmax_init      initial s_h (used only when a model is made from scratch)
    softpick_attention_gate  output gate: each head's output times sigmoid(h W_g^T), h the block's input
    softpick_eps             the epsilon of the softpick denominator
"""
from transformers import LlamaConfig

NORMALISERS = ("softmax", "softpick", "rectified", "softmax1", "sink")


class SoftpickLlamaConfig(LlamaConfig):
    model_type = "softpick_llama"

    def __init__(self, softpick_attention="softpick", softpick_ssmax=False, softpick_ssmax_init=0.3,
                 softpick_attention_gate=False, softpick_eps=1e-6, **kwargs):
        if softpick_attention not in NORMALISERS:
            raise ValueError(f"softpick_attention={softpick_attention!r}: expected one of {', '.join(NORMALISERS)}")
        self.softpick_attention = softpick_attention
        self.softpick_ssmax = bool(softpick_ssmax)
        self.softpick_ssmax_init = float(softpick_ssmax_init)
        self.softpick_attention_gate = bool(softpick_attention_gate)
        self.softpick_eps = float(softpick_eps)
        super().__init__(**kwargs)
