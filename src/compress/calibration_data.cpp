#include "calibration_data.h"

#include "errors.h"
#include "seeded_random.h"
#include "token_streams.h"

namespace mops {

torch::Tensor calibration_windows(const std::vector<TokenizedExample>& train, int samples, int length, uint64_t seed) {
  MOPS_CHECK(samples > 0 && length > 1, "--calib-samples and --calib-seqlen must be positive (got " << samples << ", "
                                                                                                    << length << ")");
  MOPS_CHECK(!train.empty(), "the calibration set is empty: the calibration source has no training examples; "
                             "give one with --calib-source (or --data)");
  std::vector<int64_t> stream;
  std::vector<uint8_t> targets;
  append_examples(stream, targets, train, /*responses_only=*/false);
  const int64_t windows = int64_t(stream.size()) / length;
  MOPS_CHECK(windows >= samples, "the calibration set is too small: its " << train.size() << " training examples make "
                                     << stream.size() << " tokens, " << windows << " windows of " << length
                                     << " tokens, but --calib-samples is " << samples
                                     << "; lower --calib-samples or --calib-seqlen, or add calibration data");
  std::vector<int64_t> starts(windows);
  for (int64_t w = 0; w < windows; ++w) starts[w] = w * length;
  SeededRandom random(seed);
  random.shuffle(starts);
  auto tokens = torch::empty({samples, length}, torch::kLong);  // (N, T)
  auto out = tokens.accessor<int64_t, 2>();
  for (int s = 0; s < samples; ++s) {
    for (int t = 0; t < length; ++t) out[s][t] = stream[starts[s] + t];
  }
  return tokens;
}

}  // namespace mops
