// The test PostgreSQL server, for integration tests that talk to it.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

namespace boong::test {

// Its DSN: scripts/test.sh starts the server and exports BOONG_TEST_PG_DSN.
inline std::string test_dsn() {
    const char* dsn = std::getenv("BOONG_TEST_PG_DSN");
    if (!dsn || !*dsn) {
        FAIL("BOONG_TEST_PG_DSN is not set: run integration tests through scripts/test.sh, or `source "
             "scripts/lib/servers.sh; boong_start_postgres \"\" \"\"` first");
    }
    return dsn;
}

}  // namespace boong::test
