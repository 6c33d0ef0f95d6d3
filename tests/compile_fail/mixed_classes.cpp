// expect: boong::Saga: all steps must be member functions of the same saga class
#include "common.hpp"

struct Other {
    static constexpr std::string_view name = "other";
    boost::asio::awaitable<void> notify(boong::StepContext<OrderData>&) { co_return; }
};
using Mixed = boong::Saga<boong::Step<"reserve", &OrderSteps::reserve>, boong::Step<"notify", &Other::notify>>;
int main() {}
