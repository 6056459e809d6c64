#include "common/coding.h"

#include <array>
#include <cstring>

namespace quiver {

void PutFixed32(std::string* dst, uint32_t v) {
  char buf[4];
  for (int i = 0; i < 4; ++i) buf[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  dst->append(buf, 4);
}

void PutFixed64(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  dst->append(buf, 8);
}

void PutBigEndian32(std::string* dst, uint32_t v) {
  char buf[4];
  for (int i = 0; i < 4; ++i) buf[i] = static_cast<char>((v >> (8 * (3 - i))) & 0xff);
  dst->append(buf, 4);
}

void PutBigEndian64(std::string* dst, uint64_t v) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
  dst->append(buf, 8);
}

void PutVarint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}

void PutLengthPrefixed(std::string* dst, std::string_view s) {
  PutVarint64(dst, s.size());
  dst->append(s.data(), s.size());
}

void PutFloat(std::string* dst, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  PutFixed32(dst, bits);
}

void PutDouble(std::string* dst, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof(bits));
  PutFixed64(dst, bits);
}

namespace {
template <typename T>
bool GetLittle(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  T r = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    r |= static_cast<T>(static_cast<uint8_t>((*in)[i])) << (8 * i);
  }
  *v = r;
  in->remove_prefix(sizeof(T));
  return true;
}
template <typename T>
bool GetBig(std::string_view* in, T* v) {
  if (in->size() < sizeof(T)) return false;
  T r = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    r = (r << 8) | static_cast<uint8_t>((*in)[i]);
  }
  *v = r;
  in->remove_prefix(sizeof(T));
  return true;
}
}  // namespace

bool GetFixed32(std::string_view* in, uint32_t* v) { return GetLittle(in, v); }
bool GetFixed64(std::string_view* in, uint64_t* v) { return GetLittle(in, v); }
bool GetBigEndian32(std::string_view* in, uint32_t* v) { return GetBig(in, v); }
bool GetBigEndian64(std::string_view* in, uint64_t* v) { return GetBig(in, v); }

bool GetVarint64(std::string_view* in, uint64_t* v) {
  uint64_t r = 0;
  for (int shift = 0, i = 0; shift <= 63 && i < static_cast<int>(in->size()); shift += 7, ++i) {
    uint8_t byte = static_cast<uint8_t>((*in)[i]);
    if (shift == 63 && byte > 1) return false;  // Overflows 64 bits.
    r |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = r;
      in->remove_prefix(i + 1);
      return true;
    }
  }
  return false;
}

bool GetLengthPrefixed(std::string_view* in, std::string_view* s) {
  uint64_t len;
  std::string_view copy = *in;
  if (!GetVarint64(&copy, &len) || len > copy.size()) return false;
  *s = copy.substr(0, len);
  copy.remove_prefix(len);
  *in = copy;
  return true;
}

bool GetFloat(std::string_view* in, float* f) {
  uint32_t bits;
  if (!GetFixed32(in, &bits)) return false;
  std::memcpy(f, &bits, sizeof(bits));
  return true;
}

bool GetDouble(std::string_view* in, double* d) {
  uint64_t bits;
  if (!GetFixed64(in, &bits)) return false;
  std::memcpy(d, &bits, sizeof(bits));
  return true;
}

namespace {
constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = MakeCrc32cTable();
}  // namespace

uint32_t Crc32cExtend(uint32_t crc, std::string_view data) {
  crc ^= 0xFFFFFFFFu;
  for (unsigned char c : data) crc = kCrc32cTable[(crc ^ c) & 0xff] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data); }

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      const uint8_t cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;  // Overlong.
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

uint64_t Fingerprint64(std::string_view data) {
  // 8 bytes per step, each mixed with a multiply-xorshift (the finaliser of
  // SplitMix64), seeded with the length so prefixes differ.
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  auto mix = [](uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  uint64_t h = mix(data.size() * kMul + 0x1234567);
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t w = 0;
    for (int b = 0; b < 8; ++b)
      w |= static_cast<uint64_t>(static_cast<uint8_t>(data[i + b])) << (8 * b);
    h = mix(h ^ (w * kMul)) + kMul;
  }
  uint64_t tail = 0;
  for (size_t b = 0; i + b < data.size(); ++b) {
    tail |= static_cast<uint64_t>(static_cast<uint8_t>(data[i + b])) << (8 * b);
  }
  return mix(h ^ (tail * kMul) ^ 0xFF51AFD7ED558CCDull);
}

}  // namespace quiver
