// REQUIRE_GPU(): GPU tests skip (not pass, not fail) on a machine without a CUDA device.
#pragma once

#include <gtest/gtest.h>

#include "kernels/cuda/device.h"

#define REQUIRE_GPU()                                                                         \
  do {                                                                                        \
    if (::inkstone::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine"; \
  } while (0)
