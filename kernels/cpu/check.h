// The CPU ops' contract checks: those of every backend (kernels/contract_checks.h), with op names
// prefixed "cpu::".
#pragma once

#include "kernels/contract_checks.h"

namespace inkstone::cpu::detail {

using namespace ::inkstone::contract;  // NOLINT: the checks are this namespace's vocabulary

}  // namespace inkstone::cpu::detail
