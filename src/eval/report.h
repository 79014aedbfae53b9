// The report of `softpick eval`: a readable table for the terminal and the same numbers as JSON.
#pragma once

#include "eval/scoring.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sp {

struct EvalReport {
  std::string checkpoint;
  int64_t step = 0;
  std::string attention;
  bool ssmax = false, attention_gate = false;
  std::string attention_label;  // attention_label() of the model config
  int64_t params = 0;
  int64_t context = 0, trained_context = 0;  // tokens
  std::string weights = "full precision";   // or "hqq 4 bits, groups of 64" (quantization.json)
  std::string activations = "none";         // quant::act_quant_label of the linear layers' inputs
  nlohmann::ordered_json quantization;      // {method, bits, group_size} of quantization.json, or null
  std::optional<ValResult> val;
  std::vector<std::string> val_files;
  std::vector<TaskResult> tasks;
};

std::string format_report(const EvalReport& r);
nlohmann::ordered_json to_json(const EvalReport& r);

}  // namespace sp
