#pragma once
// The one way csk_net includes asio (private to common/net: no public header includes it).
// asio comes from /usr/include, a system directory, so its warnings are already muted;
// the pragmas keep it that way if it is ever found elsewhere.

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <asio.hpp>
#pragma GCC diagnostic pop
