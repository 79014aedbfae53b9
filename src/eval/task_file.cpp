#include "eval/task_file.h"

#include "core/check.h"

#include <filesystem>
#include <fstream>

namespace sp {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Parses one JSONL line of `path`, knowing where it is for the messages.
struct LineReader {
  const std::string& path;
  const TaskFileOptions& opt;
  int64_t line = 0;

  template <class... Args>
  [[noreturn]] void bad(fmt::format_string<Args...> f, Args&&... args) const {
    fail("{}:{}: {}", path, line, fmt::format(f, std::forward<Args>(args)...));
  }

  const nlohmann::json& field(const nlohmann::json& j, const char* key) const {
    if (!j.contains(key)) bad("missing \"{}\"", key);
    return j[key];
  }

  std::vector<int32_t> ids(const nlohmann::json& v, const std::string& what) const {
    if (!v.is_array()) bad("\"{}\" must be a list of token ids or a string", what);
    std::vector<int32_t> out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_number_integer()) bad("\"{}\"[{}] is not an integer token id", what, i);
      const int64_t id = v[i].get<int64_t>();
      if (id < 0 || id >= opt.vocab_size)
        bad("\"{}\" token {} (index {}) is outside the vocabulary of {} ids", what, id, i, opt.vocab_size);
      out.push_back(int32_t(id));
    }
    return out;
  }

  // Byte-vocabulary encoding of a text field; BOS first for contexts and prompts.
  std::vector<int32_t> text(const std::string& s, const std::string& what, bool bos) const {
    if (!opt.tokenizer || !opt.tokenizer->is_byte_level())
      bad("\"{}\" is text, which only the byte vocabulary can encode here; give token ids instead "
          "(scripts/export_eval_tasks.py --tokenizer writes them)", what);
    std::vector<int32_t> out = opt.tokenizer->encode_bytes(s, bos);
    if (bos) out[0] = opt.bos_token_id;
    for (int32_t id : out)
      if (id >= opt.vocab_size) bad("\"{}\" encodes to id {}, outside the vocabulary of {}", what, id, opt.vocab_size);
    return out;
  }

  std::vector<int32_t> ids_or_text(const nlohmann::json& v, const std::string& what, bool bos) const {
    return v.is_string() ? text(v.get<std::string>(), what, bos) : ids(v, what);
  }

  int64_t integer(const nlohmann::json& j, const char* key, int64_t min) const {
    const auto& v = field(j, key);
    if (!v.is_number_integer() || v.get<int64_t>() < min) bad("\"{}\" must be an integer >= {}", key, min);
    return v.get<int64_t>();
  }

  ChoiceExample choice(const nlohmann::json& j) const {
    ChoiceExample ex;
    ex.line = line;
    const auto& ctx = field(j, "context");
    const auto& choices = field(j, "choices");
    if (!choices.is_array() || choices.empty()) bad("\"choices\" must be a non-empty list");
    // A text context's trailing whitespace moves to the front of each text choice, as lm-eval-harness
    // splits a request, so the space before an answer is scored as part of the answer.
    std::string ctx_text, moved;
    if (ctx.is_string()) {
      ctx_text = ctx.get<std::string>();
      size_t end = ctx_text.size();
      while (end > 0 && is_space(ctx_text[end - 1])) --end;
      moved = ctx_text.substr(end);
      ctx_text.resize(end);
      ex.context = text(ctx_text, "context", true);
    } else {
      ex.context = ids(ctx, "context");
    }
    if (ex.context.empty()) bad("\"context\" is empty; start it with BOS ({})", opt.bos_token_id);
    for (size_t i = 0; i < choices.size(); ++i) {
      const std::string what = fmt::format("choices[{}]", i);
      const auto& c = choices[i];
      if (c.is_string()) {
        const std::string s = c.get<std::string>();
        ex.choices.push_back(text((ctx.is_string() ? moved : "") + s, what, false));
        size_t lead = 0;
        while (lead < s.size() && is_space(s[lead])) ++lead;
        ex.choice_chars.push_back(double(utf8_length(s.substr(lead))));
      } else {
        ex.choices.push_back(ids(c, what));
      }
      if (ex.choices.back().empty()) bad("\"{}\" is empty", what);
    }
    if (j.contains("choice_chars")) {
      const auto& cc = j["choice_chars"];
      if (!cc.is_array() || cc.size() != choices.size())
        bad("\"choice_chars\" must list one number per choice ({})", choices.size());
      ex.choice_chars.clear();
      for (const auto& v : cc) {
        if (!v.is_number() || v.get<double>() <= 0) bad("\"choice_chars\" entries must be numbers > 0");
        ex.choice_chars.push_back(v.get<double>());
      }
    } else if (ex.choice_chars.size() != ex.choices.size() && ex.choices.size() > 1) {
      bad("\"choice_chars\" is needed with token-id choices: the character length of each choice's text "
          "(acc_norm divides by it)");
    }
    for (double c : ex.choice_chars)
      if (c <= 0) bad("a choice has no characters to normalise by; give \"choice_chars\"");
    ex.gold = integer(j, "gold", 0);
    if (ex.gold >= int64_t(ex.choices.size())) bad("\"gold\" = {} but there are {} choices", ex.gold, ex.choices.size());
    return ex;
  }

  DocumentExample document(const nlohmann::json& j) const {
    DocumentExample ex;
    ex.line = line;
    const auto& doc = field(j, "document");
    if (doc.is_string()) {
      const std::string s = doc.get<std::string>();
      ex.tokens = text(s, "document", false);
      ex.bytes = int64_t(s.size());
      ex.words = 1;  // pieces of re.split(r"\s+", text), as lm-eval-harness counts WikiText words
      for (size_t i = 0; i < s.size(); ++i)
        if (is_space(s[i]) && (i == 0 || !is_space(s[i - 1]))) ++ex.words;
    } else {
      ex.tokens = ids(doc, "document");
    }
    if (ex.tokens.empty()) bad("\"document\" is empty");
    if (j.contains("words") || !doc.is_string()) ex.words = integer(j, "words", 1);
    if (j.contains("bytes") || !doc.is_string()) ex.bytes = integer(j, "bytes", 1);
    return ex;
  }

  GenerateExample generate(const nlohmann::json& j) const {
    GenerateExample ex;
    ex.line = line;
    ex.prompt = ids_or_text(field(j, "prompt"), "prompt", true);
    if (ex.prompt.empty()) bad("\"prompt\" is empty; start it with BOS ({})", opt.bos_token_id);
    const auto& ans = field(j, "answer");
    if (!ans.is_string() || ans.get<std::string>().empty()) bad("\"answer\" must be a non-empty string");
    ex.answer = ans.get<std::string>();
    ex.max_tokens = j.contains("max_tokens") ? integer(j, "max_tokens", 1) : int64_t(ex.answer.size()) + 2;
    if (j.contains("group")) {
      const auto& g = j["group"];
      ex.group = g.is_string() ? g.get<std::string>() : g.dump();
    }
    if (j.contains("meta")) ex.meta = j["meta"];
    return ex;
  }
};

}  // namespace

const char* task_kind_name(TaskKind k) {
  switch (k) {
    case TaskKind::Choice: return "choice";
    case TaskKind::Perplexity: return "perplexity";
    case TaskKind::Generate: return "generate";
  }
  return "?";
}

size_t EvalTask::size() const { return choice.size() + documents.size() + generate.size(); }

int64_t utf8_length(const std::string& text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;  // count every byte that is not a continuation
  return n;
}

EvalTask load_task_file(const std::string& path, const TaskFileOptions& opt) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open the task file", path);
  EvalTask task;
  task.path = path;
  task.name = std::filesystem::path(path).stem().string();
  task.header = nlohmann::json::object();
  LineReader r{path, opt};
  int64_t first_line = 0;  // of the first example, for messages about mixed kinds
  bool single_choice = false;
  for (std::string text; std::getline(in, text);) {
    ++r.line;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (opt.limit > 0 && int64_t(task.size()) >= opt.limit) break;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      r.bad("not valid JSON ({})", e.what());
    }
    if (!j.is_object()) r.bad("expected a JSON object");
    const bool has_choices = j.contains("choices"), has_doc = j.contains("document"), has_prompt = j.contains("prompt");
    if (!has_choices && !has_doc && !has_prompt) {
      if (first_line == 0 && task.header.empty() && j.contains("task")) {  // the header
        task.header = j;
        if (!j["task"].is_string()) r.bad("\"task\" must be a string");
        task.name = j["task"].get<std::string>();
        if (j.contains("vocab_size") && j["vocab_size"] != opt.vocab_size)
          r.bad("the file was written for a vocabulary of {} ids, the model has {}: export it with the model's "
                "tokenizer", j["vocab_size"].dump(), opt.vocab_size);
        continue;
      }
      r.bad("an example needs \"choices\" (multiple choice), \"document\" (perplexity) or \"prompt\" (generation)");
    }
    if (int(has_choices) + int(has_doc) + int(has_prompt) > 1)
      r.bad("an example has only one of \"choices\", \"document\" and \"prompt\"");
    const TaskKind kind = has_choices ? TaskKind::Choice : has_doc ? TaskKind::Perplexity : TaskKind::Generate;
    if (first_line == 0) {
      first_line = r.line;
      task.kind = kind;
    } else if (kind != task.kind) {
      r.bad("a {} example, but line {} began a {} task; one task per file", task_kind_name(kind), first_line,
            task_kind_name(task.kind));
    }
    switch (kind) {
      case TaskKind::Choice: {
        task.choice.push_back(r.choice(j));
        const bool single = task.choice.back().choices.size() == 1;
        if (task.choice.size() == 1) single_choice = single;
        else if (single != single_choice)
          r.bad("{} choice(s), but line {} had {}: a task is either single-continuation (greedy accuracy) or "
                "multiple choice", task.choice.back().choices.size(), first_line, task.choice.front().choices.size());
        break;
      }
      case TaskKind::Perplexity: task.documents.push_back(r.document(j)); break;
      case TaskKind::Generate: task.generate.push_back(r.generate(j)); break;
    }
  }
  if (task.size() == 0) fail("{}: no examples", path);
  return task;
}

}  // namespace sp
