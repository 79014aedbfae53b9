#include "train/sample.h"

#include "core/check.h"
#include "core/rng.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace sp {

std::vector<int32_t> generate(Model& model, Activations& acts, std::vector<int32_t> prompt,
                              const SampleOptions& opt) {
  SP_ASSERT(acts.B >= 1 && !prompt.empty(), "generate needs activations and a prompt");
  const size_t V = size_t(model.config().vocab_size);
  std::vector<float> logits(V);
  std::vector<int32_t> seq = std::move(prompt), out;
  std::vector<size_t> order(V);
  Rng rng(opt.seed);
  for (int64_t i = 0; i < opt.max_new_tokens; ++i) {
    const size_t T = std::min(seq.size(), size_t(acts.T));
    model.forward(acts, std::span<const int32_t>(seq.data() + seq.size() - T, T), 1, int64_t(T));
    model.last_logits(acts, logits);
    // top-k with temperature: softmax over the k largest logits
    std::iota(order.begin(), order.end(), size_t(0));
    const size_t k = std::min(V, size_t(std::max<int64_t>(1, opt.top_k)));
    std::partial_sort(order.begin(), order.begin() + long(k), order.end(),
                      [&](size_t a, size_t b) { return logits[a] > logits[b]; });
    int32_t next = int32_t(order[0]);
    if (opt.temperature > 0) {
      std::vector<double> p(k);
      for (size_t j = 0; j < k; ++j) p[j] = std::exp((logits[order[j]] - logits[order[0]]) / opt.temperature);
      double r = rng.uniform() * std::accumulate(p.begin(), p.end(), 0.0);
      for (size_t j = 0; j < k; ++j) {
        r -= p[j];
        if (r <= 0) {
          next = int32_t(order[j]);
          break;
        }
      }
    }
    seq.push_back(next);
    out.push_back(next);
  }
  return out;
}

}  // namespace sp
