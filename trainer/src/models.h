// models.h (internal; needs LibTorch): the classifiers a config can name.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "flowfeed/options.h"
#include "flowfeed/status.h"

namespace flowfeed {

// A classifier: (N, C, H, W) float input -> (N, classes) logits.
class ClassifierImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // What a checkpoint must match: "cnn in=1x28x28 classes=10 params=421642".
  const std::string& signature() const { return signature_; }
  void set_signature(std::string s) { signature_ = std::move(s); }
  int64_t parameter_count() const;

 private:
  std::string signature_;
};

// Builds the model `options.type` for inputs of channels x height x width. InvalidArgument for an
// unknown type or an input too small for it.
Result<std::shared_ptr<ClassifierImpl>> BuildModel(const ModelOptions& options, int channels,
                                                   int height, int width, int classes);

}  // namespace flowfeed
