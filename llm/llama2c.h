// Llama-family decoder in llama2.c's checkpoint format ("version 0": a
// 7 x int32 header, then fp32 weights), with its tokenizer.bin BPE
// tokenizer and run.c's sampler, reproducing llama2.c's outputs exactly.
//
// Model: token embedding, per layer RMSNorm -> q/k/v projections -> RoPE
// (theta 10000, interleaved pairs) -> grouped-query attention over a KV
// cache -> output projection + residual, RMSNorm -> SwiGLU feed-forward +
// residual; final RMSNorm; classifier (tied to the embedding when the
// header's vocab_size is positive).
#ifndef QUIVER_LLM_LLAMA2C_H_
#define QUIVER_LLM_LLAMA2C_H_

#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "llm/codec.h"

namespace quiver::llm {

// How RoPE frequencies are stretched for long contexts (Hugging Face's
// rope_scaling): none; linear (every frequency / factor); llama3 (low
// frequencies / factor, high ones kept, a smooth blend between).
struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  float factor = 1.0f;
  float low_freq_factor = 1.0f, high_freq_factor = 4.0f;
  int original_context = 8192;
};

struct LlamaConfig {
  int dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0,
      seq_len = 0;
  bool shared_classifier = true;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  // GGUF's rope_freqs tensor (per frequency pair, a divisor); empty: none.
  std::vector<float> rope_freq_factors;
  float norm_eps = 1e-5f;
  int head_size() const { return dim / n_heads; }
  int kv_dim() const { return dim * n_kv_heads / n_heads; }
};

// Which of a pool's fixed-size KV blocks are free: the bookkeeping every
// KV cache (CPU or device memory) shares. Not thread-safe (the scheduler
// thread owns it).
class KvBlockPool {
 public:
  explicit KvBlockPool(size_t num_blocks, int block_size);
  int block_size() const { return block_size_; }
  size_t free_blocks() const { return free_.size(); }
  size_t total_blocks() const { return num_blocks_; }
  // A free block's index in [0, total_blocks()), or -1 when none is free.
  int Allocate();
  // REQUIRES: `block` came from Allocate() and is not free.
  void Free(int block);

 private:
  int block_size_;
  size_t num_blocks_;
  std::vector<int> free_;
};

// Keys and values of many sequences in fixed-size blocks of positions, so
// sequences of any length share one pool without fragmentation. A sequence
// owns a block table: position p lives in block table[p / block_size].
class PagedKvCache : public KvBlockPool {
 public:
  PagedKvCache(const LlamaConfig& config, size_t num_blocks, int block_size = 16);
  // Bytes one block takes (keys and values, all layers, float32).
  static size_t BlockBytes(const LlamaConfig& config, int block_size);
  // Keys are stored position-minor within a block ([kv_dim][block_size]),
  // so one vector load gives a key component for a block's positions and
  // attention scores are computed for all of them at once.
  const float* KeyBlock(int block, int layer) const { return &k_[Base(block, layer)]; }
  void StoreKey(int block, int layer, int offset, const float* key) {
    float* kb = &k_[Base(block, layer)];
    for (int i = 0; i < kv_dim_; ++i) kb[static_cast<size_t>(i) * block_size() + offset] = key[i];
  }
  float* Value(int block, int layer, int offset) { return &v_[Base(block, layer) + static_cast<size_t>(offset) * kv_dim_]; }

 private:
  size_t Base(int block, int layer) const {
    return (static_cast<size_t>(block) * layers_ + layer) * block_size() * kv_dim_;
  }
  int layers_, kv_dim_;
  // Left uninitialised: the OS commits pages as blocks are first used.
  std::unique_ptr<float[]> k_, v_;
};

// Allocates on 64-byte (cache-line) boundaries, so the kernels' 64-byte
// vector loads never straddle two lines (Dot4x4 with operands in cache:
// 88 -> 120 GFLOP/s on one core).
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <typename U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
};
using AlignedFloats = std::vector<float, CacheLineAllocator<float>>;

// One token of one sequence in a batched step.
struct StepRow {
  int token;
  int pos;
  const std::vector<int>* blocks;  // The sequence's block table (covers pos).
  // A prompt token of a long prompt (kLongPromptTokens or more). On the
  // CPU such rows take a matrix kernel with another fixed summation order,
  // faster once a step has dozens of them; the sequence's prompt length,
  // never its batch, decides, so it still gets the same tokens alone or
  // batched.
  bool long_prompt = false;
  // Whether the step returns this row's logits (false: an empty vector, and
  // the classifier's work for the row is skipped; a prompt's rows before its
  // last need none).
  bool logits = true;
};
// Prompts this long are prefilled with the matrix kernel (StepRow): about
// where it overtakes the row kernels (transposing the weights costs a step
// ~23 ms on the 110M model, then it saves ~0.5 ms per row).
constexpr int kLongPromptTokens = 64;

// A weight matrix group kept as its file stores it: float32, float16,
// bfloat16, Q8_0 (blocks of 32 int8 values sharing one float scale) or
// Q4_0 (blocks of 32 4-bit values sharing one float scale), row-major
// [rows][cols] with layers concatenated. Kernels convert rows to float32 as
// they read them, getting exactly the values a float32 copy would hold, so
// a model gives the same tokens whichever way it is kept; quantized weights
// take a quarter (Q8_0) or half (F16) of the memory and of the bytes read
// per token. Copies share the data.
class WeightTensor {
 public:
  // kMixed: parts of different types joined (Concat), each read as stored.
  enum class Type { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K, kMixed };
  WeightTensor() : WeightTensor(AlignedFloats{}) {}
  static WeightTensor F32(const std::vector<float>& values) {
    return WeightTensor(AlignedFloats(values.begin(), values.end()));
  }
  static WeightTensor F32(AlignedFloats values) { return WeightTensor(std::move(values)); }
  static WeightTensor F16(std::vector<uint16_t> halves);
  static WeightTensor BF16(std::vector<uint16_t> values);
  // `scales`: one per 32 values.
  static WeightTensor Q8_0(std::vector<int8_t> values, std::vector<float> scales);
  // Q4_0: per block of 32, 16 bytes whose low nibbles are values 0-15 and
  // high nibbles values 16-31, each (nibble - 8) * scale.
  static WeightTensor Q4_0(std::vector<uint8_t> packed, std::vector<float> scales);
  // ggml's K-quants, kept as their raw super-blocks of 256 values (Q4_K
  // 144 bytes, Q5_K 176, Q6_K 210): INVALID_ARGUMENT for another type or a
  // size that is not whole blocks.
  static absl::StatusOr<WeightTensor> KQuant(Type type, std::vector<uint8_t> blocks);
  // Bytes of one 256-value super-block of a K-quant type (0 for others).
  static size_t KBlockBytes(Type type);
  // Parts joined in order: one tensor of their type when they all share
  // it, else a kMixed tensor keeping each part as stored.
  static WeightTensor Concat(const std::vector<WeightTensor>& parts);
  // The rows (of `cols` values) in a new order: row i is row order[i].
  WeightTensor ReorderRows(const std::vector<size_t>& order, size_t cols) const;

  Type type() const { return type_; }
  size_t size() const { return size_; }  // Values.
  size_t bytes() const;
  // Values [offset, offset + n) as float32 into `out` (offset and n are
  // multiples of 32 for Q8_0 / Q4_0, of 256 for K-quants).
  void Read(size_t offset, size_t n, float* out) const;
  // The dot product of the `n` values at `offset` (a row) with x, summed
  // as the float32 kernels sum it.
  float DotRow(size_t offset, const float* x, int n) const;
  // DotRow for the four rows at offset, offset + n, ... into out[0..3].
  void DotRows4(size_t offset, const float* x, int n, float* out) const;
  // The float32 values (empty unless type() is kF32).
  std::span<const float> floats() const { return *f32_; }
  // For the kernels: a pointer into float32 data, or nullptr.
  const float* f32_data() const { return type_ == Type::kF32 ? f32_->data() : nullptr; }
  // The stored data, for engines that copy it to a device: by type, f32
  // (kF32), halves (kF16, kBF16: raw bits), q8 + scales (kQ8_0), q4 +
  // scales (kQ4_0: packed nibbles) or q4 alone (K-quants: the super-blocks,
  // size() / 256 * KBlockBytes(type()) bytes); all null for kMixed (see
  // parts()). Valid while this tensor (or a copy) lives.
  struct Raw {
    const float* f32 = nullptr;
    const uint16_t* halves = nullptr;
    const int8_t* q8 = nullptr;
    const uint8_t* q4 = nullptr;
    const float* scales = nullptr;
  };
  Raw raw() const;
  // kMixed: the parts in order, each (first value, part); empty otherwise.
  // Parts are whole layers, so a row never straddles two.
  std::vector<std::pair<size_t, WeightTensor>> parts() const;
  // Whether both hold the same data (a tied classifier and its embedding).
  bool SharesData(const WeightTensor& o) const {
    return type_ == o.type_ && f32_ == o.f32_ && f16_ == o.f16_ && q8_ == o.q8_ && q4_ == o.q4_ &&
           parts_ == o.parts_;
  }

 private:
  explicit WeightTensor(AlignedFloats values);
  Type type_ = Type::kF32;
  size_t size_ = 0;
  std::shared_ptr<const AlignedFloats> f32_;
  std::shared_ptr<const std::vector<uint16_t>> f16_;
  std::shared_ptr<const std::vector<int8_t>> q8_;
  std::shared_ptr<const std::vector<uint8_t>> q4_;  // Q4_0 nibbles, or K-quant blocks.
  std::shared_ptr<const std::vector<std::pair<size_t, WeightTensor>>> parts_;  // kMixed: (first value, part).
  const std::pair<size_t, WeightTensor>& PartAt(size_t offset) const;
  std::shared_ptr<const std::vector<float>> scales_;
};

class LlamaModel {
 public:
  // DATA_LOSS / INVALID_ARGUMENT for a truncated file or an impossible header.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> LoadLlama2c(const std::string& path);

  const LlamaConfig& config() const { return config_; }
  // The weights, row-major [out][in] (for conversion to other formats);
  // matrices kept quantized show as empty (is_float32() says).
  struct Weights {
    std::span<const float> embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
        classifier;
  };
  Weights weights() const {
    return {embedding_.floats(), rms_att_, wq_.floats(), wk_.floats(), wv_.floats(),
            wo_.floats(),        rms_ffn_, w1_.floats(), w2_.floats(), w3_.floats(),
            rms_final_,          classifier_.floats()};
  }
  bool is_float32() const;
  // Bytes of weights as stored (a tied classifier's data counted once).
  size_t weight_bytes() const;
  // Weight bytes one decode step reads: every matrix but the embedding
  // table (one row of it per token), the classifier included.
  size_t bytes_per_step() const;
  // A model from a config and weights in the same layout: the 12 groups of
  // Weights in order, then optionally the q, k and v biases (Qwen2-style
  // attention; [layers][dim], [layers][kv_dim] twice). Q and K rows (and
  // biases) rotate interleaved pairs, llama2.c's and GGUF llama's layout.
  // With config.shared_classifier, an empty classifier group means "the
  // embedding" (one copy, shared). INVALID_ARGUMENT when a size does not
  // match the config.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> FromWeights(
      const LlamaConfig& config, std::vector<std::vector<float>> weights);
  // The same with each group as stored (norms and biases are read as
  // float32 whatever their type).
  static absl::StatusOr<std::unique_ptr<LlamaModel>> FromTensors(const LlamaConfig& config,
                                                                 std::vector<WeightTensor> weights);
  bool has_attention_bias() const { return !bq_.empty(); }
  // Every tensor as stored (layers concatenated, as FromTensors takes
  // them), for engines that keep their own copy (CUDA). The biases are
  // empty without attention biases. Valid while the model lives.
  struct Stored {
    const WeightTensor *embedding, *wq, *wk, *wv, *wo, *w1, *w2, *w3, *classifier;
    const std::vector<float> *rms_att, *rms_ffn, *rms_final, *bq, *bk, *bv;
  };
  Stored stored() const {
    return {&embedding_, &wq_,      &wk_,      &wv_,        &wo_, &w1_, &w2_, &w3_,
            &classifier_, &rms_att_, &rms_ffn_, &rms_final_, &bq_, &bk_, &bv_};
  }
  // Caps the context length (sequences longer than `n` are refused), for
  // models whose native context needs more KV cache than a server has.
  void LimitContext(int n) { config_.seq_len = std::max(1, std::min(config_.seq_len, n)); }
  // The RoPE frequency of each rotated pair (head_size / 2), scaling applied.
  const std::vector<float>& rope_inv_freq() const { return inv_freq_; }
  // A batched step over rows of many sequences (several rows of one
  // sequence must be in position order): stores each row's keys and values
  // in the paged cache, then returns each row's logits (empty for rows
  // with logits = false). Every weight matrix
  // is read once per step for all rows, and each row's arithmetic does not
  // depend on the others, so a sequence gets the same tokens alone (one row
  // per step) or batched.
  std::vector<std::vector<float>> ForwardBatch(const std::vector<StepRow>& rows,
                                               PagedKvCache* cache) const;

 private:
  LlamaConfig config_;
  // Row-major [out][in] matrices, as llama2.c stores them.
  WeightTensor embedding_, wq_, wk_, wv_, wo_, w1_, w2_, w3_, classifier_;
  std::vector<float> rms_att_, rms_ffn_, rms_final_;
  std::vector<float> bq_, bk_, bv_;  // Empty without attention biases.
  std::vector<float> inv_freq_;
  void InitRope();
};

// Checks every row kernel form this CPU can run (AVX-512, AVX2) against the
// portable one, bit for bit, on generated data: the fused dots of Q8_0,
// Q4_0, F16, BF16 and K-quant rows (one and four rows at a time), float16
// conversion, the batched 4 x 4 kernel against Dot, and the long-prompt
// panels against the in-order sum; INTERNAL naming the first that differs.
// For tests.
absl::Status VerifyRowKernels();

// Reorders the rows of Q or K projections (or their biases, cols = 1) of
// `layers` layers from Hugging Face's rotate-half layout (a head's first
// half pairs with its second half) to interleaved pairs: within a layer,
// row h*hs + 2j + i <- h*hs + i*hs/2 + j. The stored type is kept.
WeightTensor RotateHalfToInterleaved(const WeightTensor& w, int layers, int heads, int head_size,
                                     size_t cols);

// llama2.c's tokenizer.bin (and GGUF's SentencePiece "llama" vocabulary):
// byte-pair merges by score, byte fallback (<0x00>..<0xFF> at ids
// 3..258), BOS = 1, EOS = 2 unless the file says otherwise.
class Llama2cTokenizer : public TokenCodec {
 public:
  static absl::StatusOr<std::unique_ptr<Llama2cTokenizer>> Load(const std::string& path,
                                                                int vocab_size);
  // From token strings (spaces as ' ') and merge scores.
  static std::unique_ptr<Llama2cTokenizer> FromVocab(std::vector<std::string> tokens,
                                                     std::vector<float> scores);
  const std::vector<std::string>& tokens() const { return vocab_; }
  const std::vector<float>& scores() const { return scores_; }
  // As run.c's encode: BOS, a dummy-prefix space for non-empty text, then
  // merges.
  std::vector<int> Encode(std::string_view text, bool bos, bool eos) const;
  // TokenCodec: Encode, but special tokens (SetSpecialTokens) written in the
  // text map to their ids, each text fragment getting the dummy-prefix
  // space, as llama.cpp does.
  absl::StatusOr<std::vector<int>> Tokenize(std::string_view text, bool bos) const override;
  // The text of `token` following `prev` (a leading space is dropped after
  // BOS; byte tokens become their byte; special tokens add nothing).
  std::string Decode(int prev, int token) const override;
  int vocab_size() const override { return static_cast<int>(vocab_.size()); }
  // Control tokens (GGUF token type 3) recognised in prompt text.
  void SetSpecialTokens(std::vector<int> ids);

 private:
  Llama2cTokenizer();
  int Lookup(std::string_view s) const;
  std::vector<std::pair<std::string, int>> specials_;
  std::vector<std::string> vocab_;
  std::vector<float> scores_;
  std::vector<std::pair<std::string, int>> sorted_;  // For lookups.
};

// run.c's sampler: temperature 0 is argmax; otherwise softmax of
// logits / temperature, then top-p (nucleus) when 0 < top_p < 1, else the
// whole distribution, drawn with a xorshift64* coin seeded by `seed`.
class Sampler {
 public:
  Sampler(float temperature, float top_p, uint64_t seed)
      : temperature_(temperature), top_p_(top_p), state_(seed) {}
  int Sample(std::vector<float> logits);
  float NextCoin();

 private:
  float temperature_, top_p_;
  uint64_t state_;
};

struct Generation {
  std::vector<int> prompt_ids;
  std::vector<int> ids;  // Each step's next token (forced prompt tokens included).
  std::string text;      // What run.c prints.
};

// run.c's generate loop: `steps` positions in all (prompt included), stopping
// early at BOS. A prompt the tokenizer rejects (not UTF-8) gives an empty
// generation.
Generation Generate(const LlamaModel& model, const TokenCodec& tokenizer,
                    std::string_view prompt, int steps, Sampler* sampler);

}  // namespace quiver::llm

#endif  // QUIVER_LLM_LLAMA2C_H_
