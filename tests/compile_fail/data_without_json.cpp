// expect: the saga data must be default-constructible, copyable and convertible to and from nlohmann::json
#include "common.hpp"

struct Opaque {
    int n = 0;
};
struct OpaqueSteps {
    static constexpr std::string_view name = "opaque";
    boost::asio::awaitable<void> step(boong::StepContext<Opaque>&) { co_return; }
};
using OpaqueSaga = boong::Saga<boong::Step<"step", &OpaqueSteps::step>>;
int main() {}
