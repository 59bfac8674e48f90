// Precompiled header for every target: LibTorch and the standard library pieces
// used almost everywhere. Do not include this file directly.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>
