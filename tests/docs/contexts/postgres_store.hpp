// Context of doc blocks about opening the PostgreSQL store.
#pragma once

#include "contexts/minimal.hpp"

#include <boong/postgres/roles.hpp>
#include <boong/postgres/store.hpp>

#include <iostream>

#undef DOC_FRAGMENT_PARAMS
#define DOC_FRAGMENT_PARAMS asio::io_context &ioc, std::vector<boong::EventData> events
