// quiver-convert: writes a GGUF file from a llama2.c checkpoint.
//
//   quiver-convert --llama2c=model.bin --tokenizer=tokenizer.bin --out=model.gguf
//                  [--type=f32|f16|q8_0|q4_0|q4_k|q6_k]
#include <cstdio>
#include <string>

#include "llm/gguf.h"
#include "llm/llama2c_tokenizer.h"
#include "llm/model.h"

int main(int argc, char** argv) {
  std::string in, tok, out, type = "f32";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name, std::string* v) {
      const std::string prefix = std::string("--") + name + "=";
      if (a.rfind(prefix, 0) != 0) return false;
      *v = a.substr(prefix.size());
      return true;
    };
    if (!value("llama2c", &in) && !value("tokenizer", &tok) && !value("out", &out) &&
        !value("type", &type)) {
      std::fprintf(stderr, "quiver-convert: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (in.empty() || tok.empty() || out.empty()) {
    std::fprintf(stderr,
                 "usage: quiver-convert --llama2c=model.bin --tokenizer=tokenizer.bin "
                 "--out=model.gguf [--type=f32|f16|q8_0|q4_0|q4_k|q6_k]\n");
    return 2;
  }
  quiver::llm::GgufType t;
  if (type == "f32") {
    t = quiver::llm::GgufType::kF32;
  } else if (type == "f16") {
    t = quiver::llm::GgufType::kF16;
  } else if (type == "q8_0") {
    t = quiver::llm::GgufType::kQ8_0;
  } else if (type == "q4_0") {
    t = quiver::llm::GgufType::kQ4_0;
  } else if (type == "q4_k") {
    t = quiver::llm::GgufType::kQ4_K;
  } else if (type == "q6_k") {
    t = quiver::llm::GgufType::kQ6_K;
  } else {
    std::fprintf(stderr, "quiver-convert: --type must be f32, f16, q8_0, q4_0, q4_k or q6_k\n");
    return 2;
  }
  auto model = quiver::llm::LlamaModel::LoadLlama2c(in);
  if (!model.ok()) {
    std::fprintf(stderr, "quiver-convert: %s\n", model.status().ToString().c_str());
    return 1;
  }
  auto tokenizer = quiver::llm::Llama2cTokenizer::Load(tok, (*model)->config().vocab_size);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "quiver-convert: %s\n", tokenizer.status().ToString().c_str());
    return 1;
  }
  absl::Status s = quiver::llm::WriteGguf(out, **model, **tokenizer, t);
  if (!s.ok()) {
    std::fprintf(stderr, "quiver-convert: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("wrote %s (%s)\n", out.c_str(), type.c_str());
  return 0;
}
