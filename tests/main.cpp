#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <spdlog/spdlog.h>

#include <cstdlib>

// Tests log at "error" and above unless BOONG_TEST_LOG_LEVEL says otherwise,
// so that the expected warnings of failure scenarios do not drown the output.
int main(int argc, char* argv[]) {
    const char* level = std::getenv("BOONG_TEST_LOG_LEVEL");
    spdlog::set_level(level ? spdlog::level::from_str(level) : spdlog::level::err);
    return Catch::Session().run(argc, argv);
}
