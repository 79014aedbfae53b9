"""softpick.cpp models in transformers: Llama with another attention normaliser (docs/interop.md).

Everything but the attention is transformers' Llama (embedding, RMSNorm, RoPE, SwiGLU MLP, LM head, the
KV cache and generation). The attention module is LlamaAttention plus, when the config asks for them, the
SSMax scale (`self_attn.ssmax_scale`, (H)), the learned sink logits (`self_attn.sinks`, (H)) and the output
gate (`self_attn.gate_proj`, (H*D, C)), the parameter names of softpick.cpp's checkpoints. The normalisers
are functions in transformers' attention registry, one per `softpick_attention` value, with the formulas of
docs/attention.md; every one is computed in fp32 and returns the output in the dtype of the values.
"""
import torch
from torch import nn
from transformers import LlamaForCausalLM, LlamaModel
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import AttentionInterface
from transformers.models.llama.modeling_llama import (LlamaAttention, LlamaPreTrainedModel, apply_rotary_pos_emb,
                                                      repeat_kv)

from .configuration_softpick import SoftpickLlamaConfig


def _visible_keys(attention_mask, q_len, k_len, device):
    """(B | 1, 1, q_len, k_len) bool, True where a query may attend, from the 4D mask transformers passes:
    a boolean one (True = attend), an additive float one (0 = attend), or None (causal, no padding)."""
    if attention_mask is None:
        q = torch.arange(k_len - q_len, k_len, device=device)[:, None]
        return (torch.arange(k_len, device=device)[None, :] <= q)[None, None]
    if attention_mask.ndim != 4:
        raise ValueError(f"softpick attention needs a 4D attention mask, got shape {tuple(attention_mask.shape)}; "
                         "keep the model's own attn_implementation")
    if attention_mask.dtype == torch.bool:
        return attention_mask[..., :k_len]
    return attention_mask[..., :k_len] == 0


# Each normaliser maps scores x (B, H, Tq, Tk) and the visible keys to weights. Hidden scores are set to
# -inf before any exp, so neither the forward nor a backward pass meets inf or NaN; a row without a visible
# key (a left-padded query) gets zero weights.

def softmax_weights(x, visible, module):
    y = torch.softmax(x.masked_fill(~visible, float("-inf")), dim=-1)
    return y.masked_fill(~visible.any(dim=-1, keepdim=True), 0)


def softpick_weights(x, visible, module):
    # relu(e^{x-c} - e^{-c}) / (sum |e^{x-c} - e^{-c}| + eps), c = max(0, row max): a row whose scores are
    # all <= 0 is zero (docs/attention.md, section 3).
    x = x.masked_fill(~visible, float("-inf"))
    c = x.amax(dim=-1, keepdim=True).clamp_min(0)
    e = (torch.exp(x - c) - torch.exp(-c)).masked_fill(~visible, 0)
    return e.clamp_min(0) / (e.abs().sum(dim=-1, keepdim=True) + module.config.softpick_eps)


def rectified_weights(x, visible, module):
    # softmax over the scores >= 0 only; a row without one is zero (docs/attention.md, section 4)
    kept = visible & (x >= 0)
    x = x.masked_fill(~kept, float("-inf"))
    c = x.amax(dim=-1, keepdim=True).clamp_min(0)
    e = torch.exp(x - c)
    return e / e.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


def sink_weights(x, visible, module):
    # e^{x_i} / (e^{s_h} + sum_j e^{x_j}); softmax1 is s_h = 0 (docs/attention.md, section 10)
    if module.config.softpick_attention == "sink":
        s = module.sinks.float().view(1, -1, 1, 1)
    else:
        s = torch.zeros((), device=x.device)
    x = x.masked_fill(~visible, float("-inf"))
    c = torch.maximum(x.amax(dim=-1, keepdim=True), s)
    e = torch.exp(x - c)
    return e / (torch.exp(s - c) + e.sum(dim=-1, keepdim=True))


WEIGHTS = {"softmax": softmax_weights, "softpick": softpick_weights, "rectified": rectified_weights,
           "softmax1": sink_weights, "sink": sink_weights}


def _attention_function(weights):
    """An attention function of transformers' registry: (B, H, Tq, D) queries over (B, Hkv, Tk, D) keys and
    values to a (B, Tq, H, D) output and the (B, H, Tq, Tk) weights."""
    def attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        key = repeat_kv(key, module.num_key_value_groups)
        value = repeat_kv(value, module.num_key_value_groups)
        x = torch.matmul(query.float(), key.float().transpose(2, 3)) * scaling  # (B, H, Tq, Tk)
        visible = _visible_keys(attention_mask, x.shape[-2], x.shape[-1], x.device)
        w = weights(x, visible, module)
        out = torch.matmul(w, value.float()).to(value.dtype)  # (B, H, Tq, D)
        return out.transpose(1, 2).contiguous(), w
    return attention


# One registered implementation per normaliser, named "softpick_<normaliser>", with boolean masks that are
# never skipped (an absent mask would mean "use is_causal", which only softmax kernels understand).
def _never_skipped_mask(*args, **kwargs):
    kwargs["allow_is_causal_skip"] = False
    return sdpa_mask(*args, **kwargs)


for _name, _weights in WEIGHTS.items():
    AttentionInterface.register(f"softpick_{_name}", _attention_function(_weights))
    AttentionMaskInterface.register(f"softpick_{_name}", _never_skipped_mask)


class SoftpickAttention(LlamaAttention):
    def __init__(self, config, layer_idx):
        super().__init__(config, layer_idx)
        H = config.num_attention_heads
        if config.softpick_ssmax:
            self.ssmax_scale = nn.Parameter(torch.full((H,), config.softpick_ssmax_init))
        if config.softpick_attention == "sink":
            self.sinks = nn.Parameter(torch.zeros(H))
        if config.softpick_attention_gate:
            self.gate_proj = nn.Linear(config.hidden_size, H * self.head_dim, bias=False)

    def forward(self, hidden_states, position_embeddings=None, attention_mask=None, cache=None,
                past_key_values=None, position_ids=None, **kwargs):
        cache = cache if cache is not None else past_key_values  # the name changed within transformers 5
        input_shape = hidden_states.shape[:-1]                    # (B, T)
        hidden_shape = (*input_shape, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)  # (B, Hkv, T, D)
        v = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)  # (B, Hkv, T, D)
        cos, sin = position_embeddings
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        if self.config.softpick_ssmax:  # after RoPE: q at position t times s_h * log(t + 2)
            t = position_ids.float() if position_ids is not None else torch.arange(q.shape[2], device=q.device)[None].float()
            a = self.ssmax_scale.float().view(1, -1, 1, 1) * torch.log(t + 2)[:, None, :, None]  # (B, H, T, 1)
            q = (q.float() * a).to(q.dtype)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx, kwargs=kwargs)
        attention = AttentionInterface()[f"softpick_{self.config.softpick_attention}"]
        out, weights = attention(self, q, k, v, attention_mask, scaling=self.scaling, **kwargs)
        out = out.reshape(*input_shape, -1).contiguous()  # (B, T, H*D)
        if self.config.softpick_attention_gate:
            out = out * torch.sigmoid(self.gate_proj(hidden_states))
        return self.o_proj(out), weights


class SoftpickPreTrainedModel(LlamaPreTrainedModel):
    config_class = SoftpickLlamaConfig

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, SoftpickAttention):
            if hasattr(module, "ssmax_scale"):
                nn.init.constant_(module.ssmax_scale, self.config.softpick_ssmax_init)
            if hasattr(module, "sinks"):
                nn.init.normal_(module.sinks, std=self.config.initializer_range)


class SoftpickLlamaModel(SoftpickPreTrainedModel, LlamaModel):
    def __init__(self, config):
        config._attn_implementation = f"softpick_{config.softpick_attention}"  # the mask our functions read
        super().__init__(config)
        for i, layer in enumerate(self.layers):
            layer.self_attn = SoftpickAttention(config, i)
        self.post_init()


class SoftpickLlamaForCausalLM(SoftpickPreTrainedModel, LlamaForCausalLM):
    def __init__(self, config):
        LlamaPreTrainedModel.__init__(self, config)  # LlamaForCausalLM's body with our model inside
        self.model = SoftpickLlamaModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()
