// Context of doc blocks that need only the core.
#pragma once

#include <boong/boong.hpp>
#include <boong/field_encryption.hpp>
#include <boong/memory/broker.hpp>
#include <boong/memory/store.hpp>

#include <boost/asio.hpp>

#include <cassert>

namespace asio = boost::asio;
using namespace std::chrono_literals;

#define DOC_FRAGMENT_PARAMS
