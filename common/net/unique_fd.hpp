#pragma once
// The net layer's name for csk::unique_fd (common/base/unique_fd.hpp).

#include "common/base/unique_fd.hpp"

namespace csk::net {

using csk::unique_fd;

}  // namespace csk::net
