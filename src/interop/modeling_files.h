// The transformers modeling code of softpick.cpp models (python/softpick_hf), compiled into the binary so
// that `softpick export` can put it next to the weights of every model that needs it (docs/interop.md).
#pragma once

#include <string>
#include <vector>

namespace sp {

struct EmbeddedFile {
  std::string name;  // "modeling_softpick.py"
  std::string text;
};

// configuration_softpick.py and modeling_softpick.py, as the build found them
extern const std::vector<EmbeddedFile> kHfModelingFiles;

}  // namespace sp
