// Evaluation: the task-file format and its errors, the scoring rules of lm-eval-harness (acc, acc_norm,
// greedy accuracy, rolling perplexity) against independent computations from Model::forward + loss,
// passkey prompts, and `softpick eval` / `softpick sample` end to end on a freshly trained checkpoint.
// Tolerance: the models run in double, but logits reach the host as float (as from any fp32 model), so
// a score summed from them carries float rounding: 1e-6 relative.
#include "backend/backend.h"
#include "config/config.h"
#include "core/check.h"
#include "core/rng.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "eval/passkey.h"
#include "eval/scoring.h"
#include "eval/task_file.h"
#include "model/decode.h"
#include "model/model.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

using namespace sp;
using sp::test::TempDir;

namespace {

constexpr double kTol = 1e-6;

ModelConfig small_model(const std::string& attention, bool ssmax, int64_t vocab, double init) {
  return test::tiny_model_config({.attention = attention, .ssmax = ssmax, .vocab = vocab, .init = init});
}

// ids in [2, vocab): no BOS or EOS
std::vector<int32_t> random_tokens(size_t n, int64_t vocab, uint64_t seed) {
  return test::random_tokens(n, vocab, seed, 2);
}

// -log p(targets) summed, from one whole-sequence forward pass and the model's own loss.
double forward_nll(Model& m, Activations& a, const std::vector<int32_t>& in, const std::vector<int32_t>& tgt) {
  m.forward(a, in, 1, int64_t(in.size()));
  m.loss(a, tgt, false, 0);
  return m.take_loss(a).sum;
}

EvalTask load(const TempDir& d, const std::string& text, int64_t vocab = 259, const Tokenizer* tok = nullptr) {
  sp::test::write_text(d / "t.jsonl", text);
  TaskFileOptions o;
  o.vocab_size = vocab;
  o.tokenizer = tok;
  return load_task_file(d / "t.jsonl", o);
}

}  // namespace

TEST_CASE("task files: header and ids and text with the trailing-whitespace split of lm-eval", "[unit]") {
  TempDir d;
  const Tokenizer byte = Tokenizer::load("byte");
  EvalTask t = load(d,
                    "{\"task\": \"capitals\", \"vocab_size\": 259}\n"
                    "{\"context\": \"Q: capital of France?\\nA: \", \"choices\": [\"Paris\", \"Rome\"], \"gold\": 0}\n"
                    "\n"
                    "{\"context\": [1, 70, 71], \"choices\": [[72], [73, 74]], \"choice_chars\": [1, 2.5], \"gold\": 1}\n",
                    259, &byte);
  CHECK(t.name == "capitals");
  CHECK(t.kind == TaskKind::Choice);
  REQUIRE(t.choice.size() == 2);
  const ChoiceExample& a = t.choice[0];
  CHECK(a.context == byte.encode_bytes("Q: capital of France?\nA:"));  // the space moved to the choices
  CHECK(a.choices[0] == byte.encode_bytes(" Paris", false));
  CHECK(a.choice_chars == std::vector<double>{5, 4});  // the choice text alone, as lm-eval's len(choice)
  CHECK(t.choice[1].choices[1] == std::vector<int32_t>{73, 74});
  CHECK(t.choice[1].choice_chars[1] == 2.5);
  CHECK(t.choice[1].line == 4);
  CHECK(utf8_length("na\xc3\xafve \xe2\x96\x81") == 7);

  TaskFileOptions limited{259, 1, &byte, 1};
  CHECK(load_task_file(d / "t.jsonl", limited).choice.size() == 1);

  t = load(d, "{\"document\": \"a  b\\tc\\n\"}\n{\"document\": [5, 6], \"words\": 2, \"bytes\": 7}\n", 259, &byte);
  CHECK(t.kind == TaskKind::Perplexity);
  CHECK(t.documents[0].words == 4);  // re.split(r"\s+", "a  b\tc\n") has 4 pieces
  CHECK(t.documents[0].bytes == 7);
  CHECK(t.documents[0].tokens.size() == 7);  // bytes, no BOS
  t = load(d, "{\"prompt\": [1, 9], \"answer\": \"42\", \"group\": 512}\n");
  CHECK(t.kind == TaskKind::Generate);
  CHECK(t.generate[0].group == "512");
  CHECK(t.generate[0].max_tokens == 4);
}

TEST_CASE("task files: every problem is named with its file and line", "[unit]") {
  TempDir d;
  const std::string path = d / "t.jsonl";
  const std::pair<std::string, std::string> cases[] = {
      {"{\"context\": [1], \"choices\": [[2]], \"gold\": 0}\n{\"context\": [1], \"choices\": [[2]], \"gold\"\n",
       ":2: not valid JSON"},
      {"{\"context\": [1, 300], \"choices\": [[2]], \"gold\": 0}\n", ":1: \"context\" token 300 (index 1) is outside the vocabulary of 259"},
      {"{\"context\": [1], \"choices\": [[2], [3]], \"gold\": 0}\n", ":1: \"choice_chars\" is needed"},
      {"{\"context\": [1], \"choices\": [[2], [3]], \"choice_chars\": [1, 1], \"gold\": 2}\n", ":1: \"gold\" = 2 but there are 2"},
      {"{\"context\": \"hi\", \"choices\": [\" x\"], \"gold\": 0}\n", ":1: \"context\" is text"},
      {"{\"context\": [], \"choices\": [[2]], \"gold\": 0}\n", ":1: \"context\" is empty"},
      {"{\"context\": [1], \"choices\": [[2]], \"gold\": 0}\n{\"document\": [3], \"words\": 1, \"bytes\": 1}\n",
       ":2: a perplexity example, but line 1 began a choice task"},
      {"{\"context\": [1], \"choices\": [[2]], \"gold\": 0}\n{\"context\": [1], \"choices\": [[2], [3]], "
       "\"choice_chars\": [1, 1], \"gold\": 0}\n", ":2: 2 choice(s), but line 1 had 1"},
      {"{\"task\": \"x\", \"vocab_size\": 32000}\n", ":1: the file was written for a vocabulary of 32000"},
      {"[1, 2]\n", ":1: expected a JSON object"},
      {"{\"prompt\": [1], \"answer\": 5}\n", ":1: \"answer\" must be a non-empty string"},
      {"{\"something\": 1}\n", ":1: an example needs \"choices\""},
      {"\n", "no examples"},
  };
  for (const auto& [text, message] : cases) {
    INFO(text);
    CHECK_THROWS_WITH(load(d, text), Catch::Contains(path) && Catch::Contains(message));
  }
  CHECK_THROWS_WITH(load_task_file(d / "missing.jsonl", {}), Catch::Contains("missing.jsonl: cannot open"));
}

TEST_CASE("acc takes the argmax of the summed log-likelihood and acc_norm the argmax per character", "[unit]") {
  // the long choice is less likely in total but more likely per character
  ChoiceOutcome o = choice_outcome({-2.0, -3.0}, {1, 10}, 1);
  CHECK(o.pred == 0);
  CHECK(o.pred_norm == 1);
  CHECK(!o.acc);
  CHECK(o.acc_norm);
  o = choice_outcome({-1.0, -1.0, -0.5}, {2, 2, 1}, 0);  // ties go to the first, as numpy's argmax
  CHECK(o.pred == 2);
  CHECK(o.pred_norm == 0);
}

TEST_CASE("rolling windows are lm-eval-harness's and predict every token once", "[unit]") {
  auto same = [](const std::vector<RollingWindow>& w, std::vector<std::array<int64_t, 3>> want) {
    REQUIRE(w.size() == want.size());
    for (size_t i = 0; i < w.size(); ++i) CHECK(std::array<int64_t, 3>{w[i].start, w[i].pred, w[i].end} == want[i]);
  };
  // get_rolling_token_windows(range(10), prefix, max_seq_len=4, context_len=1), shifted by the prefix
  same(rolling_windows(10, 4), {{0, 1, 5}, {4, 5, 9}, {6, 9, 11}});
  same(rolling_windows(3, 4), {{0, 1, 4}});
  for (int64_t n : {1, 7, 64, 65, 200})
    for (int64_t T : {1, 3, 64}) {
      int64_t next = 1;
      for (const RollingWindow& w : rolling_windows(n, T)) {
        CHECK(w.pred == next);
        CHECK(w.end - 1 - w.start <= T);  // inputs fit the context
        CHECK(w.start < w.pred);          // each prediction sees at least one token
        next = w.end;
      }
      CHECK(next == n + 1);
    }
}

TEST_CASE("passkey prompts fit their length, hide the key at the asked depth and follow the seed", "[unit]") {
  const Tokenizer byte = Tokenizer::load("byte");
  PasskeyOptions o{{300, 1000}, 3, 11};
  const EvalTask t = passkey_task(o, byte, 1);
  REQUIRE(t.generate.size() == 6);
  for (const GenerateExample& ex : t.generate) {
    const int64_t L = std::stoll(ex.group);
    CHECK(int64_t(ex.prompt.size()) + ex.max_tokens <= L);
    CHECK(int64_t(ex.prompt.size()) + ex.max_tokens > L - 23);  // within one filler sentence
    CHECK(ex.prompt[0] == 1);
    const std::string text = byte.decode(ex.prompt);
    CHECK(text.find("The pass key is " + ex.answer + ". Remember it. " + ex.answer + " is the pass key.") !=
          std::string::npos);
    CHECK(ex.answer.size() == 5);
  }
  const std::string shallow = byte.decode(t.generate[3].prompt), deep = byte.decode(t.generate[5].prompt);
  CHECK(shallow.find("there. The pass key is") != std::string::npos);           // depth 0
  CHECK(deep.find("pass key. What is the pass key?") != std::string::npos);     // depth 1
  CHECK(passkey_task(o, byte, 1).generate[4].answer == t.generate[4].answer);   // same seed, same keys
  o.seed = 12;
  CHECK(passkey_task(o, byte, 1).generate[4].answer != t.generate[4].answer);
  o.lengths = {100};
  CHECK_THROWS_WITH(passkey_task(o, byte, 1), Catch::Contains("at least " + std::to_string(passkey_min_length())));
}

TEST_CASE("continuation scores equal an independent forward pass even when truncated", "[model]") {
  auto be = make_backend({"cpu-f64", 2});
  for (const char* attention : {"softpick", "softmax"}) {
    INFO(attention);
    Model model(small_model(attention, std::string(attention) == "softmax", 23, 0.3), *be);
    model.init_weights(4);
    const int64_t T = 16;
    Activations acts = model.make_activations(1, T);
    Decoder dec(model, T, 5);
    ContinuationScorer scorer(dec);
    // (context, continuation) lengths: short, reused context, context cut by the window, whole window
    for (auto [nc, nt, seed] : {std::tuple{6, 3, 1}, std::tuple{6, 1, 1}, std::tuple{25, 5, 2}, std::tuple{3, 16, 3}}) {
      INFO("context " << nc << " continuation " << nt);
      auto ctx = random_tokens(size_t(nc), 23, uint64_t(seed)), cont = random_tokens(size_t(nt), 23, uint64_t(seed) + 50);
      const ContinuationScore s = scorer.score(ctx, cont);
      // lm-eval: inp = (context + continuation)[-(T + 1):][:-1]; the last len(continuation) logits score it
      std::vector<int32_t> all = ctx;
      all.insert(all.end(), cont.begin(), cont.end());
      if (int64_t(all.size()) > T + 1) all.erase(all.begin(), all.end() - (T + 1));
      std::vector<int32_t> in(all.begin(), all.end() - 1), tgt(in.size(), -1);
      for (size_t i = 0; i < cont.size(); ++i) tgt[in.size() - cont.size() + i] = cont[i];
      CHECK(-s.logprob == Approx(forward_nll(model, acts, in, tgt)).epsilon(kTol));
      bool greedy = true;  // every continuation token is the argmax after its prefix
      std::vector<float> logits(23);
      for (size_t i = 0; i < cont.size(); ++i) {
        const size_t len = in.size() - cont.size() + i + 1;
        model.forward(acts, std::span<const int32_t>(in).first(len), 1, int64_t(len));
        model.last_logits(acts, logits);
        greedy = greedy && std::max_element(logits.begin(), logits.end()) - logits.begin() == cont[i];
      }
      CHECK(s.greedy == greedy);
    }
    model.free_activations(acts);
  }
}

TEST_CASE("a model that makes one continuation certain gets every task right", "[model]") {
  // One block whose matmuls are zero passes the embedding through unchanged; one-hot embeddings and an
  // LM head that maps token t to t + 1 make a model that predicts the successor with probability ~1.
  Config c;
  c.model.attention = "softpick";
  c.model.hidden_size = 264;  // >= V = 259, and an even head dimension (66)
  c.model.num_hidden_layers = 1;
  c.model.num_heads = 4;
  c.model.intermediate_size = 8;
  c.model.vocab_size = 259;
  resolve(c);
  auto be = make_backend({"cpu-f64", 2});
  Model model(c.model, *be);
  model.init_weights(1);
  const size_t C = 264, V = 259;
  std::vector<double> embed(V * C, 0.0), head(V * C, 0.0), zero;
  for (size_t t = 0; t < V; ++t) {
    embed[t * C + t] = 1;
    head[((t + 1) % V) * C + t] = 2;  // logit 2 sqrt(C) ~ 32 for the successor (RMSNorm scales by sqrt(C))
  }
  be->upload(model.tensor(model.params(), "model.embed_tokens.weight"), std::span<const double>(embed));
  be->upload(model.tensor(model.params(), "lm_head.weight"), std::span<const double>(head));
  for (const char* w : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    Buffer b = model.tensor(model.params(), std::string("model.layers.0.self_attn.") + w + ".weight");
    be->fill_zero(b);
  }
  for (const char* w : {"gate_proj", "up_proj", "down_proj"})
    be->fill_zero(model.tensor(model.params(), std::string("model.layers.0.mlp.") + w + ".weight"));

  const Tokenizer byte = Tokenizer::load("byte");
  TempDir d;
  Decoder dec(model, 64);
  EvalTask mc = load(d,
                     "{\"context\": \"count: 0\", \"choices\": [\"1234\", \"1243\", \"9\"], \"gold\": 0}\n"
                     "{\"context\": \"ab\", \"choices\": [\"cc\", \"cd\"], \"gold\": 1}\n", 259, &byte);
  TaskResult r = evaluate_task(dec, mc, &byte);
  CHECK(r.metrics[0].name == "acc");
  CHECK(r.metrics[0].value == 1.0);
  CHECK(r.metrics[1].name == "acc_norm");
  CHECK(r.metrics[1].value == 1.0);
  EvalTask last_word = load(d, "{\"context\": \"abc\", \"choices\": [\"defg\"], \"gold\": 0}\n"
                               "{\"context\": \"abc\", \"choices\": [\"dxfg\"], \"gold\": 0}\n", 259, &byte);
  r = evaluate_task(dec, last_word, &byte);
  CHECK(r.kind_label == "greedy");
  CHECK(r.metrics[0].value == 0.5);  // the second target is not what greedy decoding gives
  EvalTask gen = load(d, "{\"prompt\": \"count: 0\", \"answer\": \"12345\", \"max_tokens\": 6, \"group\": \"a\"}\n"
                         "{\"prompt\": \"count: 0\", \"answer\": \"13\", \"group\": \"b\"}\n", 259, &byte);
  r = evaluate_task(dec, gen, &byte);
  CHECK(r.metrics[0].value == 0.5);
  REQUIRE(r.groups.size() == 2);
  CHECK(r.groups[0].correct == 1);
  CHECK(r.groups[1].correct == 0);
  CHECK(r.outputs[0]["output"] == "123456");
}

TEST_CASE("acc and acc_norm disagree when the longer choice is likelier per character", "[model]") {
  // a near-uniform model: every token costs about ln 23 nats
  auto be = make_backend({"cpu-f64", 2});
  Model model(small_model("softpick", false, 23, 0.01), *be);
  model.init_weights(8);
  Decoder dec(model, 32);
  TempDir d;
  const EvalTask t = load(d, "{\"context\": [1, 5], \"choices\": [[7], [8, 9, 10, 11]], \"choice_chars\": [1, 12], "
                             "\"gold\": 1}\n", 23);
  const TaskResult r = evaluate_task(dec, t, nullptr);
  CHECK(r.metrics[0].value == 0.0);  // acc: one token beats four
  CHECK(r.metrics[1].value == 1.0);  // acc_norm: 4 ln 23 / 12 < ln 23 / 1
}

TEST_CASE("perplexity tasks sum the log-likelihood of their rolling windows", "[model]") {
  auto be = make_backend({"cpu-f64", 2});
  Model model(small_model("rectified", true, 23, 0.3), *be);
  model.init_weights(6);
  const int64_t T = 16;
  Decoder dec(model, T, 7);
  Activations acts = model.make_activations(1, T);
  TempDir d;
  const auto doc = random_tokens(37, 23, 9), small = random_tokens(5, 23, 10);
  const EvalTask t = load(d, nlohmann::json{{"document", doc}, {"words", 4}, {"bytes", 40}}.dump() + "\n" +
                                 nlohmann::json{{"document", small}, {"words", 2}, {"bytes", 10}}.dump() + "\n", 23);
  const TaskResult r = evaluate_task(dec, t, nullptr);
  double nll = 0;
  for (const auto& tokens : {doc, small}) {
    std::vector<int32_t> s = {1};  // BOS, the prefix token
    s.insert(s.end(), tokens.begin(), tokens.end());
    for (const RollingWindow& w : rolling_windows(int64_t(tokens.size()), T)) {
      std::vector<int32_t> in(s.begin() + w.start, s.begin() + w.end - 1), tgt(in.size(), -1);
      for (int64_t p = w.pred; p < w.end; ++p) tgt[size_t(p - 1 - w.start)] = s[size_t(p)];
      nll += forward_nll(model, acts, in, tgt);
    }
  }
  CHECK(r.metrics[0].name == "word_perplexity");
  CHECK(r.metrics[0].value == Approx(std::exp(nll / 6)).epsilon(kTol));
  CHECK(r.metrics[1].value == Approx(std::exp(nll / 50)).epsilon(kTol));
  CHECK(r.metrics[2].value == Approx(nll / 50 / std::log(2.0)).epsilon(kTol));
  CHECK(r.metrics[3].value == Approx(std::exp(nll / 42)).epsilon(kTol));
  model.free_activations(acts);
}

namespace {

const std::string kTiny = std::string(SOFTPICK_TESTS_DIR) + "/configs/tiny.json";

// Byte-tokenized sentences from a small grammar, as in test_train.cpp.
void write_corpus(const TempDir& d) {
  const char* subjects[] = {"The cat", "A dog", "My friend", "The old man"};
  const char* rest[] = {"sees the ball.", "likes a red apple.", "finds the long road.", "eats some bread."};
  const Tokenizer tok = Tokenizer::load("byte");
  for (auto [name, docs] : {std::pair{"train", 300}, std::pair{"val", 30}}) {
    Rng rng(docs);
    std::vector<int32_t> tokens;
    for (int i = 0; i < docs; ++i) {
      std::string text;
      for (int s = 0; s < 4; ++s) text += std::string(subjects[rng.below(4)]) + " " + rest[rng.below(4)] + " ";
      const auto ids = tok.encode_bytes(text);
      tokens.insert(tokens.end(), ids.begin(), ids.end());
    }
    write_shard(d / (std::string(name) + ".bin"), tokens);
  }
}

}  // namespace

TEST_CASE("softpick eval and softpick sample on a freshly trained checkpoint", "[train]") {
  using sp::test::run_softpick;
  TempDir d;
  write_corpus(d);
  // seq_len 320: long enough for passkey prompts (at least passkey_min_length() tokens)
  auto r = run_softpick("train " + kTiny + " --data.train_files=" + (d / "train.bin") + " --data.val_files=" +
                        (d / "val.bin") + " --training.run_dir=" + (d / "run") +
                        " --training.seq_len=320 --training.batch_size=2 --training.steps=3");
  INFO(r.err);
  REQUIRE(r.code == 0);
  double trained_val = 0;
  {
    std::ifstream in(d / "run/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j["type"] == "eval") trained_val = j["val_loss"].get<double>();
    }
  }
  sp::test::write_text(d / "tiny.jsonl",
                       "{\"task\": \"tiny\", \"vocab_size\": 259}\n"
                       "{\"context\": \"The cat sees the\", \"choices\": [\" ball.\", \" qqqq.\"], \"gold\": 0}\n"
                       "{\"context\": \"A dog likes a red\", \"choices\": [\" apple.\", \" zzz.\"], \"gold\": 0}\n"
                       "{\"context\": [1, 87, 107], \"choices\": [[104], [120, 121]], \"choice_chars\": [1, 2], "
                       "\"gold\": 0}\n");

  // the trainer's final evaluation covered the first batch_size windows of the val stream: 2 x 320 tokens
  r = run_softpick("eval " + (d / "run") + " --val " + (d / "val.bin") + " --val-tokens 640 --tasks " +
                   (d / "tiny.jsonl") + " --passkey-lengths 300,320 --passkey-trials 2 --json " + (d / "eval.json"));
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("validation  loss") && Catch::Contains("tiny") && Catch::Contains("acc @ 320"));
  const auto j = nlohmann::json::parse(sp::test::read_text(d / "eval.json"));
  CHECK(j["step"] == 3);
  CHECK(j["context"] == 320);
  CHECK(j["val"]["tokens"] == 640);
  CHECK(j["val"]["loss"].get<double>() == Approx(trained_val).epsilon(1e-4));
  CHECK(j["tasks"]["tiny"]["examples"] == 3);
  CHECK(j["tasks"]["tiny"]["acc"].get<double>() >= 0.0);
  CHECK(j["tasks"]["tiny"].contains("acc_norm"));
  CHECK(j["tasks"]["passkey"]["groups"]["300"]["total"] == 2);
  CHECK(j["tasks"]["passkey"]["groups"]["320"]["total"] == 2);
  CHECK(j["tasks"]["passkey"]["outputs"].size() == 4);

  // greedy sampling is deterministic; seeded sampling reproduces its seed
  auto sample = [&](const std::string& args) {
    auto s = run_softpick("sample " + (d / "run") + " --prompt 'The cat' --max-tokens 12 --ignore-eos " + args +
                          " --json " + (d / "s.json"));
    INFO(s.err);
    REQUIRE(s.code == 0);
    return nlohmann::json::parse(sp::test::read_text(d / "s.json"));
  };
  const auto g1 = sample("--temperature 0"), g2 = sample("--temperature 0 --device cpu");
  CHECK(g1["ids"] == g2["ids"]);
  CHECK(g1["ids"].size() == 12);
  CHECK(g1["stop"] == "max_tokens");
  CHECK(g1["prompt_ids"] == nlohmann::json(Tokenizer::load("byte").encode_bytes("The cat")));
  const auto s1 = sample("--seed 5 --temperature 1.2 --top-k 0 --top-p 0.95");
  CHECK(sample("--seed 5 --temperature 1.2 --top-k 0 --top-p 0.95")["ids"] == s1["ids"]);
  CHECK(sample("--seed 6 --temperature 1.2 --top-k 0 --top-p 0.95")["ids"] != s1["ids"]);

  // bad input: one clear message and a non-zero exit
  r = run_softpick("sample " + (d / "run") + " --prompt " + std::string(400, 'a'));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("the prompt has 401 tokens but the context holds 320"));
  r = run_softpick("sample " + (d / "run") + " --prompt-ids 1,999");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("token 999 is outside the vocabulary of 259"));
  sp::test::write_text(d / "bad.jsonl", "{\"context\": [1], \"choices\": [[5]], \"gold\": 0}\n{\"context\": [1\n");
  r = run_softpick("eval " + (d / "run") + " --tasks " + (d / "bad.jsonl"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains(d / "bad.jsonl") && Catch::Contains(":2: not valid JSON"));
  r = run_softpick("eval " + (d / "run") + " --passkey-lengths 640");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("beyond the context of 320"));
  r = run_softpick("eval " + (d / "nowhere") + " --val " + (d / "val.bin"));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("nowhere: no such checkpoint or run directory"));
  r = run_softpick("eval " + (d / "run"));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("nothing to evaluate"));
  r = run_softpick("eval " + (d / "run") + " --val " + (d / "val.bin") + " --device gpu");
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("training.device = \"gpu\" is not one of: cpu, cuda"));
#ifndef SOFTPICK_HAVE_CUDA_BACKEND
  for (const std::string& cmd : {"eval " + (d / "run") + " --val " + (d / "val.bin"), "sample " + (d / "run")}) {
    r = run_softpick(cmd + " --device cuda");
    INFO(cmd);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("built without the CUDA backend"));
  }
#endif
}
