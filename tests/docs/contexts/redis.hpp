// Context of doc blocks about the Redis broker.
#pragma once

#include "contexts/minimal.hpp"

#undef DOC_FRAGMENT_PARAMS
#define DOC_FRAGMENT_PARAMS                                                                     \
    asio::io_context &ioc, boong::EventData event, boong::Config cfg, boong::MessageHandler handler, \
        asio::cancellation_signal &stop
