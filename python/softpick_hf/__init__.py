"""softpick.cpp models in transformers. Importing this package registers the model type "softpick_llama"
with the Auto classes, so `AutoModelForCausalLM.from_pretrained(DIR)` loads a directory written by
`softpick export` without trust_remote_code (docs/interop.md)."""
from transformers import AutoConfig, AutoModelForCausalLM

from .configuration_softpick import SoftpickLlamaConfig
from .modeling_softpick import SoftpickLlamaForCausalLM, SoftpickLlamaModel

AutoConfig.register(SoftpickLlamaConfig.model_type, SoftpickLlamaConfig, exist_ok=True)
AutoModelForCausalLM.register(SoftpickLlamaConfig, SoftpickLlamaForCausalLM, exist_ok=True)

__all__ = ["SoftpickLlamaConfig", "SoftpickLlamaForCausalLM", "SoftpickLlamaModel"]
