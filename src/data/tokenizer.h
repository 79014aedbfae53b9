// Decoding token ids back to text, for samples and `data inspect --decode`.
//
// Two vocabularies:
//   * "byte": id 0 <unk>, 1 <s> (BOS), 2 </s> (EOS), ids 3..258 the bytes 0x00..0xFF (the layout of the
//     byte-fallback tokens in Llama's vocabulary). Vocabulary size 259. Encoding is trivial, so it is here too.
//   * a Hugging Face tokenizer.json: BPE or Unigram vocabularies with either SentencePiece-style pieces
//     ("▁" for spaces, "<0x0A>" byte fallback; Llama-2) or GPT-2-style byte-level pieces.
// Special tokens are dropped from decoded text.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sp {

constexpr int64_t kByteVocabSize = 259;
constexpr int32_t kByteOffset = 3;

// GPT-2's byte-level alphabet: the UTF-8 character that stands for byte b in byte-level BPE vocabularies.
std::string byte_level_piece(uint8_t b);

class Tokenizer {
public:
  // "byte" or the path of a tokenizer.json; an Error names the file on any problem.
  static Tokenizer load(const std::string& spec);

  std::string decode(std::span<const int32_t> ids) const;
  int64_t vocab_size() const { return int64_t(pieces_.size()); }
  bool is_byte_level() const { return kind_ == Kind::Bytes; }

  // Byte vocabulary only: BOS then the UTF-8 bytes of the text.
  std::vector<int32_t> encode_bytes(const std::string& text, bool add_bos = true) const;

private:
  enum class Kind { Bytes, SentencePiece, ByteLevelBpe };
  Kind kind_ = Kind::Bytes;
  std::vector<std::string> pieces_;  // id -> piece (already mapped to raw bytes for Bytes/ByteLevelBpe)
  std::vector<bool> special_;
};

}  // namespace sp
