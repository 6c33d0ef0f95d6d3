// What the compile-fail cases share: a saga class whose steps are right, and
// its data.
#pragma once

#include <boong/saga_runner.hpp>
#include <boong/memory/store.hpp>

struct OrderData {
    int n = 0;
};
inline void to_json(boong::json& j, const OrderData& d) { j = boong::json{{"n", d.n}}; }
inline void from_json(const boong::json& j, OrderData& d) { d.n = j.at("n").get<int>(); }

class OrderSteps {
public:
    static constexpr std::string_view name = "orders";
    boost::asio::awaitable<void> reserve(boong::StepContext<OrderData>&) { co_return; }
    boost::asio::awaitable<void> release(boong::StepContext<OrderData>&) { co_return; }
    boost::asio::awaitable<void> charge(boong::StepContext<OrderData>&) { co_return; }
};
