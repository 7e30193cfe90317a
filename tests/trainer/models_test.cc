// The models a config can name: shapes, and ResNet-18 against torchvision's parameter count.
#include "models.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace flowfeed {
namespace {

std::shared_ptr<ClassifierImpl> Build(const std::string& type, int c, int h, int w, int classes,
                                      const std::string& stem = "imagenet") {
  ModelOptions o;
  o.type = type;
  o.stem = stem;
  auto m = BuildModel(o, c, h, w, classes);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? m.value() : nullptr;
}

TEST(Models, ResNet18MatchesTorchvisionsParameterCount) {
  auto m = Build("resnet18", 3, 224, 224, 1000);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->parameter_count(), 11689512);  // torchvision.models.resnet18()
  torch::NoGradGuard g;
  m->eval();
  EXPECT_EQ(m->forward(torch::zeros({2, 3, 224, 224})).sizes(), (std::vector<int64_t>{2, 1000}));
}

TEST(Models, SmallInputsWithTheCifarStem) {
  auto m = Build("resnet18", 3, 32, 32, 10, "cifar");
  ASSERT_TRUE(m);
  torch::NoGradGuard g;
  m->eval();
  EXPECT_EQ(m->forward(torch::zeros({2, 3, 32, 32})).sizes(), (std::vector<int64_t>{2, 10}));
  // The ImageNet stem refuses inputs it would shrink to nothing.
  ModelOptions o;
  o.type = "resnet18";
  EXPECT_FALSE(BuildModel(o, 1, 28, 28, 10).ok());
}

TEST(Models, CnnAndMlpShapesAndSignatures) {
  auto cnn = Build("cnn", 1, 28, 28, 10);
  ASSERT_TRUE(cnn);
  torch::NoGradGuard g;
  cnn->eval();
  EXPECT_EQ(cnn->forward(torch::zeros({4, 1, 28, 28})).sizes(), (std::vector<int64_t>{4, 10}));
  EXPECT_EQ(cnn->signature().substr(0, 20), "cnn in=1x28x28 class");
  auto mlp = Build("mlp", 3, 8, 8, 5);
  ASSERT_TRUE(mlp);
  EXPECT_EQ(mlp->forward(torch::zeros({2, 3, 8, 8})).sizes(), (std::vector<int64_t>{2, 5}));
  // 192*256 + 256 + 256*5 + 5
  EXPECT_EQ(mlp->parameter_count(), 192 * 256 + 256 + 256 * 5 + 5);
  ModelOptions bad;
  bad.type = "transformer";
  auto r = BuildModel(bad, 1, 8, 8, 2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("transformer"), std::string::npos);
  bad.type = "mlp";
  EXPECT_FALSE(BuildModel(bad, 1, 8, 8, 1).ok());  // one class is no classification
}

}  // namespace
}  // namespace flowfeed
