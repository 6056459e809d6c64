#include "llm/load.h"

#include <filesystem>

#include "common/status_macros.h"
#include "common/strings.h"
#include "llm/gguf.h"
#include "llm/hf_model.h"

namespace quiver::llm {

absl::StatusOr<LoadedModel> LoadModel(const LoadOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("no model path given");
  LoadedModel out;
  if (options.path.ends_with(".gguf")) {
    ASSIGN_OR_RETURN(out, LoadGguf(options.path));
  } else if (std::filesystem::is_directory(options.path)) {
    ASSIGN_OR_RETURN(out, LoadHfModel(options.path));
  } else {
    ASSIGN_OR_RETURN(out.model, LlamaModel::LoadLlama2c(options.path));
    std::string tok = options.tokenizer_path;
    if (tok.empty()) {
      tok = (std::filesystem::path(options.path).parent_path() / "tokenizer.bin").string();
    }
    ASSIGN_OR_RETURN(out.tokenizer, Llama2cTokenizer::Load(tok, out.model->config().vocab_size));
  }
  if (options.max_context > 0) out.model->LimitContext(options.max_context);
  out.model->SetInt8Dots(options.int8_dots);
  return out;
}

std::string ModelName(const std::string& path) {
  const std::string name(LastPathComponent(path));
  if (std::filesystem::is_directory(path)) return name;
  return std::filesystem::path(name).stem().string();
}

}  // namespace quiver::llm
