// expect: the saga class must declare `static constexpr std::string_view name
#include "common.hpp"

struct Nameless {
    boost::asio::awaitable<void> step(boong::StepContext<OrderData>&) { co_return; }
};
using NamelessSaga = boong::Saga<boong::Step<"step", &Nameless::step>>;
int main() {}
