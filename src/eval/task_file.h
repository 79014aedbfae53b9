// Evaluation task files: JSON Lines, one example per line, optionally after one header line. The full
// format is in docs/evaluation.md; scripts/export_eval_tasks.py writes these files from the benchmarks'
// Hugging Face datasets with any tokenizer.
//
//   header (optional)  {"task": "arc_easy", "vocab_size": 32000, "tokenizer": "...", "source": "..."}
//   choice             {"context": [ids] | "text", "choices": [[ids] | "text", ...], "gold": i,
//                       "choice_chars": [n, ...]}                    acc, acc_norm (1 choice: greedy acc)
//   perplexity         {"document": [ids] | "text", "words": n, "bytes": n}    rolling log-likelihood
//   generate           {"prompt": [ids] | "text", "answer": "12345", "max_tokens": n, "group": "1024",
//                       "meta": {...}}                               exact match of the greedy output
//
// Token ids are used as they are (the exporter starts contexts and prompts with BOS). Text fields need the
// byte vocabulary: a context or prompt becomes BOS + its UTF-8 bytes, a choice or document its bytes.
// Every problem ends with an Error naming the file and line.
#pragma once

#include "data/tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sp {

enum class TaskKind { Choice, Perplexity, Generate };
const char* task_kind_name(TaskKind k);

struct ChoiceExample {
  std::vector<int32_t> context;               // scored as given; never empty
  std::vector<std::vector<int32_t>> choices;  // each a continuation of the context; never empty
  std::vector<double> choice_chars;           // characters of each choice's text, for acc_norm
  int64_t gold = 0;
  int64_t line = 0;
};

struct DocumentExample {
  std::vector<int32_t> tokens;  // the document without BOS (BOS is the prefix of the first window)
  int64_t words = 0, bytes = 0;  // of the original text, for word and byte perplexity
  int64_t line = 0;
};

struct GenerateExample {
  std::vector<int32_t> prompt;
  std::string answer;       // correct iff the greedy continuation, leading spaces removed, starts with it
  int64_t max_tokens = 0;   // tokens to generate
  std::string group;        // results are also reported per group (e.g. the passkey context length)
  nlohmann::json meta;      // copied to the per-example output (the passkey's depth, ...)
  int64_t line = 0;
};

struct EvalTask {
  std::string name;  // header "task", else the file name without extension
  std::string path;
  TaskKind kind = TaskKind::Choice;
  nlohmann::json header;  // the header line, or an empty object
  std::vector<ChoiceExample> choice;
  std::vector<DocumentExample> documents;
  std::vector<GenerateExample> generate;
  size_t size() const;
};

struct TaskFileOptions {
  int64_t vocab_size = 0;     // ids must be below it
  int32_t bos_token_id = 1;
  const Tokenizer* tokenizer = nullptr;  // for text fields; must be the byte vocabulary
  int64_t limit = 0;          // > 0: keep only the first `limit` examples
};

EvalTask load_task_file(const std::string& path, const TaskFileOptions& opt);

// Characters (Unicode code points) of UTF-8 text, as Python's len(str) counts them.
int64_t utf8_length(const std::string& text);

}  // namespace sp
