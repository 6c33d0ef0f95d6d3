// Context of doc blocks about the RabbitMQ broker and backends chosen by
// configuration.
#pragma once

#include "contexts/redis.hpp"
