// AnalysisReport: the aggregates over cells, the JSON fields (docs/analysis.md) and the printed table.
#include "analysis/analyze.h"

#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <limits>

namespace sp {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(double num, double den) { return den > 0 ? num / den : kNaN; }

// "12.34%", or "-" for an undefined value
std::string percent(double x) { return std::isnan(x) ? "-" : fmt::format("{:.2f}%", 100.0 * x); }
std::string number(double x) { return std::isnan(x) ? "-" : fmt::format("{:.4g}", x); }
std::string fixed(double x) { return std::isnan(x) ? "-" : fmt::format("{:.2f}", x); }

}  // namespace

double AnalysisReport::sink_rate() const {
  double sinks = 0, cells = 0;
  for (size_t i = 0; i < sink_cells.size(); ++i) {
    sinks += double(sink_count[i]);
    cells += double(sink_cells[i]);
  }
  return ratio(sinks, cells);
}

double AnalysisReport::sink_rate_layer(int64_t l) const {
  double sinks = 0, cells = 0;
  for (int64_t h = 0; h < heads; ++h) {
    sinks += double(sink_count[size_t(l * heads + h)]);
    cells += double(sink_cells[size_t(l * heads + h)]);
  }
  return ratio(sinks, cells);
}

double AnalysisReport::sink_rate_head(int64_t l, int64_t h) const {
  const size_t i = size_t(l * heads + h);
  return ratio(double(sink_count[i]), double(sink_cells[i]));
}

double AnalysisReport::sink_score_head(int64_t l, int64_t h) const {
  const size_t i = size_t(l * heads + h);
  return ratio(sink_score_sum[i], double(sink_cells[i]));
}

double AnalysisReport::sink_score() const {
  double sum = 0, cells = 0;
  for (size_t i = 0; i < sink_cells.size(); ++i) {
    sum += sink_score_sum[i];
    cells += double(sink_cells[i]);
  }
  return ratio(sum, cells);
}

double AnalysisReport::sink_score_layer(int64_t l) const {
  double sum = 0, cells = 0;
  for (int64_t h = 0; h < heads; ++h) {
    sum += sink_score_sum[size_t(l * heads + h)];
    cells += double(sink_cells[size_t(l * heads + h)]);
  }
  return ratio(sum, cells);
}

Moments AnalysisReport::hidden_all() const {
  Moments all;
  for (const auto& m : hidden) all.merge(m);
  return all;
}

SparsityCounts AnalysisReport::sparsity_all() const {
  SparsityCounts all;
  for (const auto& c : sparsity) all.merge(c);
  return all;
}

nlohmann::ordered_json to_json(const AnalysisReport& r) {
  using Json = nlohmann::ordered_json;
  const int64_t L = r.layers, H = r.heads;
  Json rate_l = Json::array(), score_l = Json::array(), rate_h = Json::array(), score_h = Json::array();
  Json zero_l = Json::array(), near_l = Json::array();
  for (int64_t l = 0; l < L; ++l) {
    rate_l.push_back(r.sink_rate_layer(l));
    score_l.push_back(r.sink_score_layer(l));
    Json rates = Json::array(), scores = Json::array();
    for (int64_t h = 0; h < H; ++h) {
      rates.push_back(r.sink_rate_head(l, h));
      scores.push_back(r.sink_score_head(l, h));
    }
    rate_h.push_back(rates);
    score_h.push_back(scores);
    zero_l.push_back(r.sparsity[size_t(l)].zero_fraction());
    near_l.push_back(r.sparsity[size_t(l)].near_zero_fraction());
  }
  Json kurt_l = Json::array(), min_l = Json::array(), max_l = Json::array(), abs_l = Json::array();
  for (const auto& m : r.hidden) {
    kurt_l.push_back(m.kurtosis());
    min_l.push_back(m.min);
    max_l.push_back(m.max);
    abs_l.push_back(m.max_abs());
  }
  const Moments all = r.hidden_all();
  const SparsityCounts sp = r.sparsity_all();

  Json j;
  j["sequences"] = r.sequences;
  j["seq_len"] = r.seq_len;
  j["num_layers"] = L;
  j["num_heads"] = H;
  j["sink_eps"] = r.sink_eps;
  j["near_zero"] = r.near_zero;
  j["sink_rate"] = r.sink_rate();
  j["sink_rate_per_layer"] = rate_l;
  j["sink_rate_per_head"] = rate_h;
  j["sink_score"] = r.sink_score();
  j["sink_score_per_layer"] = score_l;
  j["sink_score_per_head"] = score_h;
  j["kurtosis"] = all.kurtosis();
  j["kurtosis_per_layer"] = kurt_l;
  j["min_activation"] = all.min;
  j["max_activation"] = all.max;
  j["max_abs_activation"] = all.max_abs();
  j["min_activation_per_layer"] = min_l;
  j["max_activation_per_layer"] = max_l;
  j["max_abs_activation_per_layer"] = abs_l;
  j["sparsity_zero"] = sp.zero_fraction();
  j["sparsity_near_zero"] = sp.near_zero_fraction();
  j["sparsity_zero_per_layer"] = zero_l;
  j["sparsity_near_zero_per_layer"] = near_l;
  if (!r.gate.empty()) {
    Json gate_l = Json::array();
    for (const auto& m : r.gate) gate_l.push_back(m.mean);
    j["gate_mean_per_layer"] = gate_l;
  }
  j["attention_entries"] = sp.total;
  j["attention_dumps"] = r.dumped;
  return j;
}

std::string format_report(const AnalysisReport& r) {
  const std::string near = fmt::format("|a|<={:g}", r.near_zero);
  std::string s = fmt::format("{:<12}{:>11}{:>13}{:>12}{:>12}{:>12}{:>10}{:>12}\n", "", "sink rate", "mean a[t,0]",
                              "kurtosis", "min act", "max act", "zeros", near);
  auto hidden_cols = [](const Moments& m) {
    return fmt::format("{:>12}{:>12}{:>12}", fixed(m.kurtosis()), number(m.min), number(m.max));
  };
  s += fmt::format("{:<12}{:>11}{:>13}{}\n", "embedding", "", "", hidden_cols(r.hidden[0]));
  auto attention_row = [&](const std::string& name, double rate, double score, const Moments& hidden,
                           const SparsityCounts& sp) {
    return fmt::format("{:<12}{:>11}{:>13}{}{:>10}{:>12}\n", name, percent(rate), number(score), hidden_cols(hidden),
                       percent(sp.zero_fraction()), percent(sp.near_zero_fraction()));
  };
  for (int64_t l = 0; l < r.layers; ++l)
    s += attention_row(fmt::format("block {}", l), r.sink_rate_layer(l), r.sink_score_layer(l),
                       r.hidden[size_t(l) + 1], r.sparsity[size_t(l)]);
  s += attention_row("all", r.sink_rate(), r.sink_score(), r.hidden_all(), r.sparsity_all());
  s += fmt::format("\nsink rate: share of (sequence, block, head) cells whose mean weight on key 0 (mean a[t,0]) "
                   "is > {:g}.\nkurtosis: Pearson mu4 / mu2^2 of the hidden states (the embedding output, each "
                   "block's output, all pooled).\nzeros: exact zeros in the causal triangle of the attention "
                   "maps.\n",
                   r.sink_eps);
  s += fmt::format("\nsink rate per head, % of {} sequences:\n{:<12}", r.sequences, "");
  for (int64_t h = 0; h < r.heads; ++h) s += fmt::format("{:>8}", fmt::format("head {}", h));
  s += "\n";
  for (int64_t l = 0; l < r.layers; ++l) {
    s += fmt::format("{:<12}", fmt::format("block {}", l));
    for (int64_t h = 0; h < r.heads; ++h) {
      const double x = r.sink_rate_head(l, h);
      s += fmt::format("{:>8}", std::isnan(x) ? std::string("-") : fmt::format("{:.1f}", 100.0 * x));
    }
    s += "\n";
  }
  if (!r.gate.empty()) {
    s += fmt::format("\noutput gate, mean and max of sigmoid(h W_g^T) over heads, channels and positions:\n");
    for (size_t l = 0; l < r.gate.size(); ++l)
      s += fmt::format("{:<12}{:>8.3f}{:>8.3f}\n", fmt::format("block {}", l), r.gate[l].mean, r.gate[l].max);
  }
  return s;
}

}  // namespace sp
