#pragma once

#include <memory>

#include "runtime/backend.h"

namespace inkstone {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace inkstone
