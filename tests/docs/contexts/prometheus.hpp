// Context of doc blocks that pass a PrometheusObserver to Boong (docs/metrics.md).
#pragma once

#include <boong/boong.hpp>
#include <boong/prometheus/metrics.hpp>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <boost/asio.hpp>

namespace asio = boost::asio;
using namespace std::chrono_literals;

#define DOC_FRAGMENT_PARAMS
