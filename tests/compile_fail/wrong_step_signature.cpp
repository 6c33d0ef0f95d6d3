// expect: boong::Step: the action must be a member function of the saga class
// A step that takes its context by value.
#include "common.hpp"

struct Bad {
    static constexpr std::string_view name = "bad";
    boost::asio::awaitable<void> reserve(boong::StepContext<OrderData>) { co_return; }
};
using BadSaga = boong::Saga<boong::Step<"reserve", &Bad::reserve>>;
int main() {
    BadSaga::steps();
}
