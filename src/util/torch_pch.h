// Precompiled header shared by every target that includes libtorch.
#pragma once
#include <ATen/ATen.h>
#include <torch/torch.h>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <string>
#include <vector>
