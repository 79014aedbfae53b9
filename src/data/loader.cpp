#include "data/loader.h"

#include "core/check.h"
#include "core/rng.h"

#include <algorithm>
#include <map>
#include <numeric>

namespace sp {

namespace {

// Fisher-Yates with our own generator, so the order is the same with every standard library.
std::vector<uint64_t> permutation(uint64_t n, uint64_t seed) {
  std::vector<uint64_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  Rng rng(seed);
  for (uint64_t i = n; i > 1; --i) std::swap(p[i - 1], p[rng.below(i)]);
  return p;
}

}  // namespace

struct DataLoader::Epoch {
  uint64_t index = UINT64_MAX;
  std::vector<size_t> order;        // shard visited k-th in this epoch
  std::vector<uint64_t> starts;     // stream offset (within the epoch) where the k-th shard begins
  std::map<size_t, std::vector<uint64_t>> window_perm;  // shard -> permutation, cached for this epoch
};

DataLoader::DataLoader(const std::vector<std::string>& files, const LoaderOptions& opt, const std::string& what)
    : opt_(opt), what_(what), epoch_(std::make_unique<Epoch>()) {
  SP_ASSERT(opt.batch_size > 0 && opt.seq_len > 0 && opt.world_size > 0 && opt.rank >= 0 &&
                opt.rank < opt.world_size, "loader options");
  if (files.empty()) usage_fail("{}: no shard files given", what);
  shards_.reserve(files.size());
  for (const auto& f : files) shards_.emplace_back(f, opt.vocab_size, opt.bos_token_id);
  windows_.reserve(shards_.size());
  for (const auto& shard : shards_) {
    windows_.emplace_back(shard, opt.seq_len, opt.layout, int32_t(opt.bos_token_id));
    windows_per_epoch_ += windows_.back().count();
  }
  if (windows_per_epoch_ == 0)
    fail("{}: the shards hold {} tokens in all, too few for one window of {} + 1 = {} tokens in the '{}' data "
         "layout; use more data or a smaller {}", what, total_tokens(), opt.seq_len_name, opt.seq_len + 1,
         data_layout_name(opt.layout), opt.seq_len_name);
  pos_ = LoaderPosition{0, windows_per_epoch_, opt.seed, opt.shuffle, opt.layout};
}

DataLoader::~DataLoader() = default;

int64_t DataLoader::total_tokens() const {
  int64_t n = 0;
  for (const auto& s : shards_) n += s.size();
  return n;
}

std::pair<size_t, uint64_t> DataLoader::locate(uint64_t stream_index) {
  const uint64_t e = stream_index / windows_per_epoch_, in_epoch = stream_index % windows_per_epoch_;
  Epoch& ep = *epoch_;
  if (ep.index != e) {
    ep.index = e;
    ep.window_perm.clear();
    ep.order.resize(shards_.size());
    if (opt_.shuffle) {
      auto p = permutation(shards_.size(), mix_seed(opt_.seed, e, 0xD00D));
      std::copy(p.begin(), p.end(), ep.order.begin());
    } else {
      std::iota(ep.order.begin(), ep.order.end(), size_t(0));
    }
    ep.starts.assign(shards_.size() + 1, 0);
    for (size_t k = 0; k < shards_.size(); ++k) ep.starts[k + 1] = ep.starts[k] + windows_[ep.order[k]].count();
  }
  // the k-th shard of the epoch holds stream offsets [starts[k], starts[k+1])
  size_t k = size_t(std::upper_bound(ep.starts.begin(), ep.starts.end(), in_epoch) - ep.starts.begin()) - 1;
  const size_t shard = ep.order[k];
  const uint64_t local = in_epoch - ep.starts[k];
  if (!opt_.shuffle) return {shard, local};
  auto it = ep.window_perm.find(shard);
  if (it == ep.window_perm.end()) {
    if (ep.window_perm.size() >= 4) ep.window_perm.clear();  // bound memory: only nearby shards are in use
    it = ep.window_perm.emplace(shard, permutation(windows_[shard].count(), mix_seed(opt_.seed, e, shard + 1))).first;
  }
  return {shard, it->second[local]};
}

void DataLoader::next(std::span<int32_t> tokens) {
  const int64_t B = opt_.batch_size, T = opt_.seq_len;
  SP_ASSERT(tokens.size() == size_t(B * (T + 1)), "batch buffer holds {} tokens, expected {}", tokens.size(),
            B * (T + 1));
  const uint64_t first = pos_.consumed + uint64_t(opt_.rank) * uint64_t(B);
  for (int64_t b = 0; b < B; ++b) {
    auto [shard, window] = locate(first + uint64_t(b));
    windows_[shard].read(window, tokens.subspan(size_t(b * (T + 1)), size_t(T + 1)));
  }
  pos_.consumed += uint64_t(opt_.world_size) * uint64_t(B);
}

std::vector<int32_t> DataLoader::first_inputs(int64_t S) const {
  SP_ASSERT(S >= 0 && uint64_t(S) <= windows_per_epoch_, "{} of {} windows", S, windows_per_epoch_);
  const int64_t T = opt_.seq_len;
  std::vector<int32_t> inputs(size_t(S * T)), window(size_t(T + 1));
  int64_t s = 0;
  for (const auto& w : windows_)
    for (uint64_t j = 0; s < S && j < w.count(); ++j, ++s) {
      w.read(j, window);
      std::copy_n(window.begin(), T, inputs.begin() + s * T);
    }
  return inputs;
}

void DataLoader::restore(const LoaderPosition& p) {
  if (p.layout != opt_.layout)
    usage_fail("{}: the saved loader position was made with data.layout = \"{}\", this run uses \"{}\"; resume "
               "with the same data.layout (or start a new run)", what_, data_layout_name(p.layout),
               data_layout_name(opt_.layout));
  if (p.windows_per_epoch != windows_per_epoch_)
    usage_fail("{}: the saved loader position is for data with {} windows per epoch, but these shards give {} "
               "(different files or training.seq_len); resume with the same data", what_, p.windows_per_epoch,
               windows_per_epoch_);
  if (p.seed != opt_.seed || p.shuffle != opt_.shuffle)
    usage_fail("{}: the saved loader position was made with seed {} (shuffle {}), this run uses seed {} "
               "(shuffle {}); resume with the same training.seed", what_, p.seed, p.shuffle, opt_.seed,
               opt_.shuffle);
  pos_ = p;
}

nlohmann::json to_json(const LoaderPosition& p) {
  return {{"consumed", p.consumed}, {"windows_per_epoch", p.windows_per_epoch}, {"seed", p.seed},
          {"shuffle", p.shuffle}, {"layout", data_layout_name(p.layout)}};
}

LoaderPosition loader_position_from_json(const nlohmann::json& j) {
  LoaderPosition p;
  p.consumed = j.at("consumed").get<uint64_t>();
  p.windows_per_epoch = j.at("windows_per_epoch").get<uint64_t>();
  p.seed = j.at("seed").get<uint64_t>();
  p.shuffle = j.at("shuffle").get<bool>();
  // checkpoints written before data.layout existed used the stream layout
  const std::string layout = j.value("layout", std::string("stream"));
  if (layout != "stream" && layout != "document" && layout != "bos")
    fail("loader.layout \"{}\" is not stream, document or bos", layout);
  p.layout = parse_data_layout(layout);
  return p;
}

}  // namespace sp
