#include "eval/load.h"

#include "checkpoint/checkpoint.h"
#include "core/check.h"
#include "core/log.h"
#include "quant/quantize.h"

#include <filesystem>

namespace sp {

namespace fs = std::filesystem;

InferenceModel load_inference_model(const std::string& path, const std::string& device, int threads) {
  InferenceModel m;
  nlohmann::json state;
  m.dir = resolve_checkpoint(path, state);
  m.config = checkpoint_config(state, m.dir);
  m.step = state.value("step", int64_t(0));
  if (threads <= 0 && m.config.training.threads) threads = int(*m.config.training.threads);
  if (!device.empty()) apply_override(m.config, "training.device=" + device);
  m.backend = make_backend({m.config.training.device, threads});
  m.model = std::make_unique<Model>(m.config.model, *m.backend);
  load_weights(m.dir, *m.model);
  m.quantization = quant::quantization_record(m.dir);
  const ActQuantArgs act = quant::recorded_act_quant(m.quantization);
  if (act.kind != ActQuant::None) {
    m.model->set_activation_quant(act);
    spdlog::info("{}: linear-layer inputs as {}", m.dir, quant::act_quant_label(act));
  }
  return m;
}

int64_t inference_context(const Config& c, int64_t requested) {
  const int64_t trained = c.training.seq_len;
  if (requested <= 0) return trained;
  if (requested > trained)
    spdlog::warn("--seq-len {} is beyond the trained context of {} tokens: RoPE and SSMax never saw those "
                 "positions, so expect the model to degrade there", requested, trained);
  return requested;
}

std::optional<Tokenizer> load_model_tokenizer(const Config& c, const std::string& spec) {
  std::string s = spec;
  if (s.empty()) {
    s = c.data.tokenizer;
    if (s != "byte" && !fs::exists(s)) {
      spdlog::warn("the checkpoint's tokenizer {} is not on this machine; pass --tokenizer to decode text", s);
      return std::nullopt;
    }
  }
  Tokenizer t = Tokenizer::load(s);
  if (t.vocab_size() > c.model.vocab_size)
    fail("tokenizer {}: {} ids, more than the model's vocabulary of {}; it is not this model's tokenizer", s,
         t.vocab_size(), c.model.vocab_size);
  return t;
}

}  // namespace sp
