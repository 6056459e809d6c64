// Byte encodings for keys and values we store: little-endian fixed-width
// integers, big-endian integers (order-preserving in keys), LEB128 varints and
// length-prefixed strings. Decoders consume from a string_view and return
// false on truncated or malformed input; they never read out of bounds.
#ifndef QUIVER_COMMON_CODING_H_
#define QUIVER_COMMON_CODING_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace quiver {

void PutFixed32(std::string* dst, uint32_t v);
void PutFixed64(std::string* dst, uint64_t v);
// Big-endian: byte-wise comparison of encodings orders like the integers.
void PutBigEndian32(std::string* dst, uint32_t v);
void PutBigEndian64(std::string* dst, uint64_t v);
void PutVarint64(std::string* dst, uint64_t v);
void PutLengthPrefixed(std::string* dst, std::string_view s);
void PutFloat(std::string* dst, float f);
void PutDouble(std::string* dst, double d);

[[nodiscard]] bool GetFixed32(std::string_view* in, uint32_t* v);
[[nodiscard]] bool GetFixed64(std::string_view* in, uint64_t* v);
[[nodiscard]] bool GetBigEndian32(std::string_view* in, uint32_t* v);
[[nodiscard]] bool GetBigEndian64(std::string_view* in, uint64_t* v);
[[nodiscard]] bool GetVarint64(std::string_view* in, uint64_t* v);
[[nodiscard]] bool GetLengthPrefixed(std::string_view* in, std::string_view* s);
[[nodiscard]] bool GetFloat(std::string_view* in, float* f);
[[nodiscard]] bool GetDouble(std::string_view* in, double* d);

// CRC-32C (Castagnoli) of `data`, for checksummed files.
uint32_t Crc32c(std::string_view data);
// The CRC-32C of A+data given `crc` = Crc32c(A), for data arriving in pieces.
uint32_t Crc32cExtend(uint32_t crc, std::string_view data);

// A 64-bit fingerprint of `data`, stable across processes and versions (it
// is stored): equal inputs give equal values, different ones almost surely
// differ. Not cryptographic.
uint64_t Fingerprint64(std::string_view data);

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace quiver

#endif  // QUIVER_COMMON_CODING_H_
