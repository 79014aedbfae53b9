#include "data/tokenizer.h"

#include "core/check.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

namespace sp {

namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::map<std::string, unsigned char> byte_level_decoder() {
  std::map<std::string, unsigned char> m;
  for (int b = 0; b < 256; ++b) m[byte_level_piece(uint8_t(b))] = static_cast<unsigned char>(b);
  return m;
}

// Splits a UTF-8 string into its characters (each a short string).
std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

bool uses_byte_level(const nlohmann::json& decoder) {
  if (!decoder.is_object()) return false;
  if (decoder.value("type", "") == "ByteLevel") return true;
  if (decoder.contains("decoders"))
    for (const auto& d : decoder["decoders"]) if (uses_byte_level(d)) return true;
  return false;
}

}  // namespace

std::string byte_level_piece(uint8_t b) {
  // printable bytes map to themselves, the others, in order, to the code points 256, 257, ...
  auto printable = [](int c) { return (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF); };
  std::string s;
  if (printable(b)) {
    append_utf8(s, b);
    return s;
  }
  uint32_t extra = 0;
  for (int c = 0; c < b; ++c) extra += printable(c) ? 0 : 1;
  append_utf8(s, 256 + extra);
  return s;
}

Tokenizer Tokenizer::load(const std::string& spec) {
  Tokenizer t;
  if (spec == "byte") {
    t.kind_ = Kind::Bytes;
    t.pieces_ = {"<unk>", "<s>", "</s>"};
    t.special_ = {true, true, true};
    for (int b = 0; b < 256; ++b) {
      t.pieces_.push_back(std::string(1, char(b)));
      t.special_.push_back(false);
    }
    return t;
  }
  std::ifstream in(spec);
  if (!in) fail("tokenizer {}: cannot open; pass \"byte\" or the path of a tokenizer.json", spec);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer {}: not valid JSON ({})", spec, e.what());
  }
  if (!j.contains("model") || !j["model"].contains("vocab"))
    fail("tokenizer {}: no model.vocab; this is not a Hugging Face tokenizer.json", spec);
  std::map<int64_t, std::string> by_id;
  const auto& vocab = j["model"]["vocab"];
  if (vocab.is_object()) {  // BPE / WordLevel: piece -> id
    for (auto& [piece, id] : vocab.items()) by_id[id.get<int64_t>()] = piece;
  } else if (vocab.is_array()) {  // Unigram: [piece, score] in id order
    for (size_t i = 0; i < vocab.size(); ++i) by_id[int64_t(i)] = vocab[i].at(0).get<std::string>();
  } else {
    fail("tokenizer {}: model.vocab is neither an object nor an array", spec);
  }
  std::map<int64_t, bool> special;
  if (j.contains("added_tokens"))
    for (const auto& a : j["added_tokens"]) {
      int64_t id = a.at("id").get<int64_t>();
      by_id[id] = a.at("content").get<std::string>();
      special[id] = a.value("special", false);
    }
  const int64_t n = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  t.pieces_.assign(size_t(n), "");
  t.special_.assign(size_t(n), false);
  for (auto& [id, piece] : by_id) t.pieces_[size_t(id)] = piece;
  for (auto& [id, s] : special) t.special_[size_t(id)] = s;
  t.kind_ = uses_byte_level(j.value("decoder", nlohmann::json())) ? Kind::ByteLevelBpe : Kind::SentencePiece;
  if (t.kind_ == Kind::ByteLevelBpe) {
    auto dec = byte_level_decoder();
    for (size_t i = 0; i < t.pieces_.size(); ++i) {
      if (t.special_[i]) continue;
      std::string raw;
      for (const auto& ch : utf8_chars(t.pieces_[i])) {
        auto it = dec.find(ch);
        raw += it == dec.end() ? ch : std::string(1, char(it->second));
      }
      t.pieces_[i] = raw;
    }
  }
  return t;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= pieces_.size()) {
      out += "<?>";
      continue;
    }
    if (special_[size_t(id)]) continue;
    const std::string& p = pieces_[size_t(id)];
    if (kind_ != Kind::SentencePiece) {
      out += p;
    } else if (p.size() == 6 && p.rfind("<0x", 0) == 0 && p.back() == '>') {
      out += char(std::stoi(p.substr(3, 2), nullptr, 16));  // byte fallback
    } else {
      for (size_t i = 0; i < p.size();) {  // "▁" (U+2581, 3 bytes) is a space
        if (p.compare(i, 3, "\xE2\x96\x81") == 0) { out += ' '; i += 3; }
        else out += p[i++];
      }
    }
  }
  return out;
}

std::vector<int32_t> Tokenizer::encode_bytes(const std::string& text, bool add_bos) const {
  SP_ASSERT(kind_ == Kind::Bytes, "encode_bytes needs the byte vocabulary");
  std::vector<int32_t> ids;
  if (add_bos) ids.push_back(1);
  for (unsigned char c : text) ids.push_back(int32_t(c) + kByteOffset);
  return ids;
}

}  // namespace sp
