// Token shards (format, validation, corruption), the data layouts, and the data loader (determinism, coverage,
// ranks, resume).
#include "core/check.h"
#include "core/rng.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "data/windows.h"
#include "test_util.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

using namespace sp;
using sp::test::TempDir;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected an error");
  return {};
}

// Documents of random lengths, each BOS then ids in [3, vocab).
std::vector<int32_t> make_tokens(size_t n, int32_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = (i == 0 || rng.below(50) == 0) ? 1 : int32_t(3 + rng.below(uint64_t(vocab - 3)));
  return t;
}

void patch_bytes(const std::string& path, size_t offset, std::vector<unsigned char> bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(std::streamoff(offset));
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

}  // namespace

TEST_CASE("shard round trip in uint16 and uint32", "[unit]") {
  TempDir d;
  auto small = make_tokens(10000, 300, 1);
  write_shard(d / "a.bin", small);
  Shard a(d / "a.bin", 300, 1);
  CHECK(a.version() == 1);
  CHECK(std::filesystem::file_size(d / "a.bin") == 1024 + 2 * small.size());
  std::vector<int32_t> back(small.size());
  a.read(0, back);
  CHECK(back == small);
  CHECK(a.stats().num_documents == std::count(small.begin(), small.end(), 1));
  CHECK(a.stats().min_token == 1);

  auto big = make_tokens(5000, 100000, 2);
  write_shard(d / "b.bin", big);
  Shard b(d / "b.bin", 100000, 1);
  CHECK(b.version() == 2);
  std::vector<int32_t> back2(big.size());
  b.read(0, back2);
  CHECK(back2 == big);
  CHECK(b.stats().max_token == *std::max_element(big.begin(), big.end()));
  CHECK(!std::filesystem::exists(d / "b.bin.tmp"));
}

TEST_CASE("corrupt shards are rejected with the file and offset", "[unit]") {
  TempDir d;
  auto toks = make_tokens(1000, 300, 3);
  auto fresh = [&](const std::string& name) {
    write_shard(d / name, toks);
    return d / name;
  };
  std::string p = fresh("magic.bin");
  patch_bytes(p, 0, {1, 2, 3, 4});
  CHECK_THAT(error_of([&] { Shard(p, 300, 1); }), Catch::Contains(p) && Catch::Contains("bad magic"));

  p = fresh("version.bin");
  patch_bytes(p, 4, {7, 0, 0, 0});
  CHECK_THAT(error_of([&] { Shard(p, 300, 1); }), Catch::Contains(p) && Catch::Contains("version 7"));

  p = fresh("trunc.bin");
  std::filesystem::resize_file(p, 1024 + 2 * 999);
  CHECK_THAT(error_of([&] { Shard(p, 300, 1); }), Catch::Contains(p) && Catch::Contains("truncated"));

  p = fresh("long.bin");
  std::filesystem::resize_file(p, 1024 + 2 * 1001);
  CHECK_THAT(error_of([&] { Shard(p, 300, 1); }), Catch::Contains("longer than its header"));

  p = fresh("header.bin");
  std::filesystem::resize_file(p, 100);
  CHECK_THAT(error_of([&] { Shard(p, 300, 1); }), Catch::Contains("shorter than the 1024-byte header"));

  p = fresh("range.bin");
  patch_bytes(p, 1024 + 2 * 500, {0x2C, 0x01});  // token 500 := 300
  CHECK_THAT(error_of([&] { Shard(p, 300, 1); }),
             Catch::Contains("token id 300 at byte offset 2024") && Catch::Contains("vocab_size 300"));
  CHECK_NOTHROW(Shard(p, 301, 1));

  CHECK_THAT(error_of([&] { Shard(d / "missing.bin", 300, 1); }), Catch::Contains("missing.bin"));
}

TEST_CASE("data inspect validates and reports", "[unit]") {
  TempDir d;
  auto toks = make_tokens(3000, 259, 4);
  write_shard(d / "s.bin", toks);
  auto r = sp::test::run_softpick("data inspect " + (d / "s.bin") + " --vocab-size=259 --decode=20");
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("tokens      3000") && Catch::Contains("documents"));
  std::filesystem::copy_file(d / "s.bin", d / "cut.bin");
  std::filesystem::resize_file(d / "cut.bin", 2000);
  r = sp::test::run_softpick("data inspect " + (d / "s.bin") + " " + (d / "cut.bin"));
  CHECK(r.code != 0);
  CHECK_THAT(r.err, Catch::Contains(d / "cut.bin"));
  r = sp::test::run_softpick("data inspect " + (d / "s.bin") + " --vocab-size=100");
  CHECK(r.code != 0);
  CHECK_THAT(r.err, Catch::Contains("vocab_size 100"));
}

TEST_CASE("byte tokenizer decodes what it encodes", "[unit]") {
  Tokenizer t = Tokenizer::load("byte");
  std::string text = "Hello, world!\nnaïve café";
  auto ids = t.encode_bytes(text);
  CHECK(ids.front() == 1);
  CHECK(t.decode(ids) == text);
  CHECK(t.vocab_size() == kByteVocabSize);
}

TEST_CASE("tokenizer.json decoding: SentencePiece and byte-level pieces", "[unit]") {
  TempDir d;
  sp::test::write_text(d / "sp.json", R"({"model": {"type": "BPE", "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2,
      "<0x0A>": 3, "\u2581Hello": 4, "\u2581world": 5, "!": 6}},
      "added_tokens": [{"id": 1, "content": "<s>", "special": true}],
      "decoder": {"type": "Sequence", "decoders": [{"type": "Replace"}, {"type": "ByteFallback"}]}})");
  Tokenizer s = Tokenizer::load(d / "sp.json");
  std::vector<int32_t> ids = {1, 4, 5, 6, 3};
  CHECK(s.decode(ids) == " Hello world!\n");
  sp::test::write_text(d / "bl.json", R"({"model": {"type": "BPE", "vocab": {"Hello": 0, "\u0120world": 1, "\u010a": 2}},
      "decoder": {"type": "ByteLevel"}})");
  Tokenizer b = Tokenizer::load(d / "bl.json");
  std::vector<int32_t> ids2 = {0, 1, 2};
  CHECK(b.decode(ids2) == "Hello world\n");
  CHECK_THAT(error_of([&] { Tokenizer::load(d / "nope.json"); }), Catch::Contains("nope.json"));
}

// ---- the loader ----

namespace {

struct Corpus {
  TempDir dir;
  std::vector<std::string> files;
  Corpus(std::vector<size_t> sizes) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      // token k of shard i encodes (i, k), so windows can be identified from their content
      std::vector<int32_t> t(sizes[i]);
      for (size_t k = 0; k < t.size(); ++k) t[k] = int32_t(i * 100000 + k);
      files.push_back(dir / fmt::format("s{}.bin", i));
      write_shard(files.back(), t);
    }
  }
};

LoaderOptions opts(int64_t B, int64_t T, int rank = 0, int world = 1, uint64_t seed = 7) {
  LoaderOptions o;
  o.batch_size = B;
  o.seq_len = T;
  o.seed = seed;
  o.rank = rank;
  o.world_size = world;
  return o;
}

// The first token of every window this loader serves in `calls` calls.
std::vector<int32_t> window_starts(DataLoader& dl, int64_t B, int64_t T, int calls) {
  std::vector<int32_t> starts, buf(size_t(B * (T + 1)));
  for (int c = 0; c < calls; ++c) {
    dl.next(buf);
    for (int64_t b = 0; b < B; ++b) {
      starts.push_back(buf[size_t(b * (T + 1))]);
      // a window is T + 1 consecutive tokens of one shard
      for (int64_t t = 1; t <= T; ++t) REQUIRE(buf[size_t(b * (T + 1) + t)] == buf[size_t(b * (T + 1))] + t);
    }
  }
  return starts;
}

}  // namespace

TEST_CASE("loader: windows per shard and full coverage of an epoch", "[unit]") {
  Corpus c({1001, 517, 33, 2000});  // T = 16: 62 + 32 + 2 + 124 = 220 windows
  const int64_t B = 4, T = 16;
  DataLoader dl(c.files, opts(B, T), "test");
  REQUIRE(dl.windows_per_epoch() == 220);
  auto starts = window_starts(dl, B, T, 55);  // exactly one epoch
  std::set<int32_t> unique(starts.begin(), starts.end());
  CHECK(unique.size() == 220);
  for (int32_t s : starts) CHECK((s % 100000) % T == 0);
  // shuffled: not in file order
  CHECK(!std::is_sorted(starts.begin(), starts.end()));
  // the next epoch covers everything again, in another order
  auto next = window_starts(dl, B, T, 55);
  CHECK(std::set<int32_t>(next.begin(), next.end()) == unique);
  CHECK(next != starts);
  CHECK(dl.epoch() == 2);
}

TEST_CASE("loader: same seed same order, other seed other order", "[unit]") {
  Corpus c({3000, 3000});
  DataLoader a(c.files, opts(2, 32), "test"), b(c.files, opts(2, 32), "test"), o(c.files, opts(2, 32, 0, 1, 8), "test");
  auto sa = window_starts(a, 2, 32, 40), sb = window_starts(b, 2, 32, 40), so = window_starts(o, 2, 32, 40);
  CHECK(sa == sb);
  CHECK(sa != so);
}

TEST_CASE("loader: ranks are disjoint and together equal the single-rank stream", "[unit]") {
  Corpus c({1500, 900, 1200});
  const int64_t B = 3, T = 10;
  const int W = 3, calls = 30;
  DataLoader single(c.files, opts(B * W, T), "test");
  auto whole = window_starts(single, B * W, T, calls);
  std::vector<std::vector<int32_t>> per_rank;
  for (int r = 0; r < W; ++r) {
    DataLoader dl(c.files, opts(B, T, r, W), "test");
    per_rank.push_back(window_starts(dl, B, T, calls));
  }
  std::multiset<int32_t> all;
  for (auto& v : per_rank) all.insert(v.begin(), v.end());
  CHECK(all == std::multiset<int32_t>(whole.begin(), whole.end()));
  // within one epoch (359 windows >= 270 taken here) nothing repeats across ranks
  CHECK(std::set<int32_t>(all.begin(), all.end()).size() == all.size());
  // rank r's b-th window of call k is window k*W*B + r*B + b of the stream
  for (int k = 0; k < calls; ++k)
    for (int r = 0; r < W; ++r)
      for (int b = 0; b < B; ++b) CHECK(per_rank[r][k * B + b] == whole[size_t(k * W * B + r * B + b)]);
}

TEST_CASE("loader: resume gives the windows of an uninterrupted run, also on another world size", "[unit]") {
  Corpus c({2000, 1300, 700});
  const int64_t B = 2, T = 12;
  // uninterrupted on 2 ranks for 40 calls: the stream positions 0 .. 160
  DataLoader ref(c.files, opts(B * 2, T), "test");
  auto stream = window_starts(ref, B * 2, T, 40);

  std::vector<int32_t> got;
  LoaderPosition saved;
  {  // 2 ranks for 15 calls, then "crash"
    DataLoader r0(c.files, opts(B, T, 0, 2), "test"), r1(c.files, opts(B, T, 1, 2), "test");
    for (int k = 0; k < 15; ++k) {
      auto a = window_starts(r0, B, T, 1), b = window_starts(r1, B, T, 1);
      got.insert(got.end(), a.begin(), a.end());
      got.insert(got.end(), b.begin(), b.end());
    }
    saved = loader_position_from_json(nlohmann::json::parse(to_json(r0.position()).dump()));
  }
  {  // resume on 4 ranks with B = 1: same global batch of 4 windows
    std::vector<std::unique_ptr<DataLoader>> ranks;
    for (int r = 0; r < 4; ++r) {
      ranks.push_back(std::make_unique<DataLoader>(c.files, opts(1, T, r, 4), "test"));
      ranks.back()->restore(saved);
    }
    for (int k = 0; k < 25; ++k)
      for (auto& dl : ranks) {
        auto w = window_starts(*dl, 1, T, 1);
        got.insert(got.end(), w.begin(), w.end());
      }
  }
  CHECK(got == stream);
}

TEST_CASE("loader: restore refuses other data or seed, and too little data is an error", "[unit]") {
  Corpus c({500, 400}), other({900});
  DataLoader a(c.files, opts(2, 16), "test"), b(other.files, opts(2, 16), "test");
  CHECK_THAT(error_of([&] { b.restore(a.position()); }), Catch::Contains("windows per epoch"));
  DataLoader s(c.files, opts(2, 16, 0, 1, 99), "test");
  CHECK_THAT(error_of([&] { s.restore(a.position()); }), Catch::Contains("seed"));
  CHECK_THAT(error_of([&] { DataLoader(c.files, opts(1, 1000), "data.train_files"); }),
             Catch::Contains("data.train_files") && Catch::Contains("too few"));
}

TEST_CASE("loader: unshuffled order is file order", "[unit]") {
  Corpus c({100, 100});
  auto o = opts(1, 10);
  o.shuffle = false;
  DataLoader dl(c.files, o, "val");
  auto s = window_starts(dl, 1, 10, 18);
  for (int i = 0; i < 9; ++i) CHECK(s[size_t(i)] == i * 10);
  for (int i = 0; i < 9; ++i) CHECK(s[size_t(9 + i)] == 100000 + i * 10);
}

TEST_CASE("layouts: stream, document and bos windows hold what data/windows.h says", "[unit]") {
  TempDir dir;
  const auto tokens = make_tokens(3001, 259, 5);  // documents of ~50 tokens, BOS = 1
  write_shard(dir / "a.bin", tokens);
  const Shard shard(dir / "a.bin", 259, 1);
  const int64_t n = int64_t(tokens.size());
  std::vector<int32_t> w;
  for (int64_t T : {7, 16, 64, 200}) {
    INFO("T " << T);
    w.assign(size_t(T + 1), -1);
    const ShardWindows stream(shard, T, DataLayout::Stream, 1), bos(shard, T, DataLayout::Bos, 1),
        doc(shard, T, DataLayout::Document, 1);
    REQUIRE(stream.count() == uint64_t((n - 1) / T));
    for (uint64_t j = 0; j < stream.count(); ++j) {
      stream.read(j, w);
      CHECK(std::equal(w.begin(), w.end(), tokens.begin() + int64_t(j) * T));
    }
    // bos: BOS then T tokens of the stream, nothing skipped
    REQUIRE(bos.count() == uint64_t(n / T));
    for (uint64_t j = 0; j < bos.count(); ++j) {
      bos.read(j, w);
      CHECK(w[0] == 1);
      CHECK(std::equal(w.begin() + 1, w.end(), tokens.begin() + int64_t(j) * T));
    }
    // document: each window is T + 1 stream tokens from a BOS; the next one starts at the first BOS at or
    // after this one's T inputs, and the first at the first BOS of the shard
    std::vector<int64_t> starts;
    for (uint64_t j = 0; j < doc.count(); ++j) {
      doc.read(j, w);
      const auto at = std::search(tokens.begin() + (starts.empty() ? 0 : starts.back() + T), tokens.end(),
                                  w.begin(), w.end());
      REQUIRE(at != tokens.end());
      starts.push_back(at - tokens.begin());
      CHECK(w[0] == 1);
    }
    REQUIRE(!starts.empty());
    int64_t from = 0;
    for (int64_t p : starts) {
      CHECK(std::find(tokens.begin() + from, tokens.begin() + p, 1) == tokens.begin() + p);  // first BOS
      from = p + T;
    }
    // after the last window no BOS leaves room for another
    for (int64_t p = from; p < n; ++p) CHECK(!(tokens[size_t(p)] == 1 && p + T + 1 <= n));
  }
}

TEST_CASE("loader: the document layout covers its windows once per epoch, a changed layout is refused on "
          "resume, positions saved before layouts existed are stream", "[unit]") {
  TempDir dir;
  std::vector<std::string> files;
  for (int i = 0; i < 3; ++i) {
    files.push_back(dir / fmt::format("s{}.bin", i));
    write_shard(files.back(), make_tokens(size_t(900 + 300 * i), 259, mix_seed(11, uint64_t(i), 0)));
  }
  const int64_t B = 3, T = 20;
  auto o = opts(B, T);
  o.vocab_size = 259;
  o.layout = DataLayout::Document;
  DataLoader dl(files, o, "data.train_files");
  uint64_t expected = 0;
  for (const auto& f : files) expected += ShardWindows(Shard(f, 259, 1), T, DataLayout::Document, 1).count();
  REQUIRE(dl.windows_per_epoch() == expected);
  std::vector<int32_t> buf(size_t(B * (T + 1)));
  std::multiset<std::vector<int32_t>> seen;
  for (uint64_t k = 0; k < expected / uint64_t(B); ++k) {
    dl.next(buf);
    for (int64_t b = 0; b < B; ++b) {
      CHECK(buf[size_t(b * (T + 1))] == 1);
      seen.emplace(buf.begin() + b * (T + 1), buf.begin() + (b + 1) * (T + 1));
    }
  }
  CHECK(std::set<std::vector<int32_t>>(seen.begin(), seen.end()).size() == seen.size());

  // first_inputs: the unshuffled windows' first T tokens
  const auto first = dl.first_inputs(2);
  auto u = o;
  u.shuffle = false;
  u.batch_size = 2;
  DataLoader plain(files, u, "val");
  plain.next(std::span<int32_t>(buf).first(size_t(2 * (T + 1))));
  for (int64_t s = 0; s < 2; ++s)
    CHECK(std::equal(first.begin() + s * T, first.begin() + (s + 1) * T, buf.begin() + s * (T + 1)));

  // a position saved under one layout is refused under another
  const auto saved = loader_position_from_json(nlohmann::json::parse(to_json(dl.position()).dump()));
  CHECK(saved.layout == DataLayout::Document);
  auto ob = o;
  ob.layout = DataLayout::Bos;
  DataLoader other(files, ob, "data.train_files");
  CHECK_THAT(error_of([&] { other.restore(saved); }), Catch::Contains("data.layout") && Catch::Contains("document"));
  // a position without "layout" (written before layouts existed) is the stream layout
  auto j = to_json(LoaderPosition{});
  j.erase("layout");
  CHECK(loader_position_from_json(j).layout == DataLayout::Stream);
  j["layout"] = "sideways";
  CHECK_THAT(error_of([&] { loader_position_from_json(j); }), Catch::Contains("sideways"));
}

TEST_CASE("shards over 4 GB: 64-bit offsets end to end", "[unit]") {
  // A sparse uint32 shard of 1.1e9 tokens (4.4 GB long, a few KiB on disk): zeros except one marked
  // window that starts past byte 2^32. Opening validates every token; the loader must serve that window.
  TempDir d;
  const std::string path = d / "big.bin";
  const int64_t n = 1'100'000'000, T = 8;
  const int64_t marked = 1'080'000'000 / T;  // its first token is at byte 1024 + 4 * 1.08e9 > 2^32
  {
    std::vector<unsigned char> header(kShardHeaderBytes, 0);
    auto put32 = [&](size_t at, uint32_t v) { for (int b = 0; b < 4; ++b) header[at + b] = (v >> (8 * b)) & 0xFF; };
    put32(0, uint32_t(kShardMagic));
    put32(4, 2);
    put32(8, uint32_t(n));
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(header.data()), std::streamsize(header.size()));
  }
  std::filesystem::resize_file(path, kShardHeaderBytes + size_t(n) * 4);
  const size_t first = size_t(marked) * size_t(T);
  REQUIRE(kShardHeaderBytes + first * 4 > (size_t(1) << 32));
  for (int64_t t = 0; t <= T; ++t) {
    uint32_t v = uint32_t(7 + t);
    patch_bytes(path, kShardHeaderBytes + (first + size_t(t)) * 4,
                {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)});
  }
  Shard s(path, 100, 1);
  CHECK(s.size() == n);
  CHECK(s.stats().max_token == 7 + T);
  CHECK(s.at(int64_t(first)) == 7);
  LoaderOptions o;
  o.batch_size = 1;
  o.seq_len = T;
  o.shuffle = false;
  DataLoader dl({path}, o, "big");
  CHECK(dl.windows_per_epoch() == uint64_t((n - 1) / T));
  LoaderPosition p = dl.position();
  p.consumed = uint64_t(marked);
  dl.restore(p);
  std::vector<int32_t> w(size_t(T + 1));
  dl.next(w);
  for (int64_t t = 0; t <= T; ++t) CHECK(w[size_t(t)] == 7 + t);
}
