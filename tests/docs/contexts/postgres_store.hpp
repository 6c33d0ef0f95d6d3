// Context of doc blocks about opening the PostgreSQL store.
#pragma once

#include "contexts/minimal.hpp"

#undef DOC_FRAGMENT_PARAMS
#define DOC_FRAGMENT_PARAMS asio::io_context &ioc, std::vector<boong::EventData> events
