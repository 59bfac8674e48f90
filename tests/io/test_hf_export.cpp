// save_hf_checkpoint: the rotate-half permutation undone by the reader's, and a Llama written as a
// Hugging Face directory reading back parameter for parameter (tied and untied, grouped-query).
#include <gtest/gtest.h>

#include "hf_checkpoint.h"
#include "test_support.h"
#include "tiny_mops.h"

namespace mops {
namespace {

TEST(HfExport, PermuteRotateHalfIsUndoneByTheReader) {
  auto gen = at::detail::createCPUGenerator(3);
  const auto w = torch::randn({4 * 8, 16}, gen);  // 4 heads of D 8
  const auto permuted = permute_rotate_half(w, 4);
  EXPECT_FALSE(permuted.equal(w));
  EXPECT_TRUE(unpermute_rotate_half(permuted, 4).equal(w));
  // Head 0's rotate-half rows: the even rows of the pairs (0, 2, 4, 6), then the odd ones.
  EXPECT_TRUE(permuted.slice(0, 0, 4).equal(w.index({torch::tensor({0, 2, 4, 6})})));
  EXPECT_TRUE(permuted.slice(0, 4, 8).equal(w.index({torch::tensor({1, 3, 5, 7})})));
}

TEST(HfExport, ALlamaReadsBackParameterForParameter) {
  for (bool tied : {true, false}) {
    auto config = tiny_config();  // 4 heads, 2 key/value heads
    config.tied_classifier = tied;
    Llama model(config);
    model->init_weights(5);
    const auto dir = fresh_test_dir(tied ? "hf-tied" : "hf-untied");
    save_hf_checkpoint(model, dir.string());
    auto loaded = load_hf_checkpoint(dir.string());
    EXPECT_EQ(loaded->config().to_json(), config.to_json());
    const auto ours = model->named_parameters(), theirs = loaded->named_parameters();
    ASSERT_EQ(ours.size(), theirs.size());
    for (const auto& item : ours) EXPECT_TRUE(item.value().equal(theirs[item.key()])) << item.key() << " tied " << tied;
  }
}

}  // namespace
}  // namespace mops
