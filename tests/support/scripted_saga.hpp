// A saga whose steps do what a test tells them, and log what they did.
#pragma once

#include <boong/policy.hpp>
#include <boong/saga.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace boong::test {

struct TestData {
    int value = 0;
    std::vector<std::string> trail;  // what the steps appended, to see data flow between steps
};
inline void to_json(json& j, const TestData& d) { j = json{{"value", d.value}, {"trail", d.trail}}; }
inline void from_json(const json& j, TestData& d) {
    j.at("value").get_to(d.value);
    j.at("trail").get_to(d.trail);
}

// What a step does on one attempt.
enum class Act { ok, fail, reject, hang, slow_ok, dirty_fail };

// The plan for one step: what each attempt does (the last entry repeats).
struct Plan {
    std::vector<Act> actions{Act::ok};
    std::vector<Act> compensations{Act::ok};
    std::chrono::milliseconds slow{20};
};

class ScriptedSaga {
public:
    static constexpr std::string_view name = "scripted";

    std::map<std::string, Plan, std::less<>> plans;
    // Tries of a step ("~b" for its compensation) that find a dependency
    // down (boong::Unavailable) before its plan applies.
    std::map<std::string, int, std::less<>> unavailable_tries;
    std::vector<std::string> calls;            // "a#1" for action attempt 1, "~a#1" for compensation
    std::vector<std::string> idempotency_keys;
    int in_flight = 0;
    int max_in_flight = 0;

    boost::asio::awaitable<void> act(StepContext<TestData>& ctx) { return perform(ctx, false); }
    boost::asio::awaitable<void> undo(StepContext<TestData>& ctx) { return perform(ctx, true); }

    // Steps of the test sagas; each forwards to act/undo.
    boost::asio::awaitable<void> a(StepContext<TestData>& c) { return perform(c, false); }
    boost::asio::awaitable<void> undo_a(StepContext<TestData>& c) { return perform(c, true); }
    boost::asio::awaitable<void> b(StepContext<TestData>& c) { return perform(c, false); }
    boost::asio::awaitable<void> undo_b(StepContext<TestData>& c) { return perform(c, true); }
    boost::asio::awaitable<void> c(StepContext<TestData>& x) { return perform(x, false); }
    boost::asio::awaitable<void> undo_c(StepContext<TestData>& x) { return perform(x, true); }
    boost::asio::awaitable<void> d(StepContext<TestData>& x) { return perform(x, false); }
    boost::asio::awaitable<void> undo_d(StepContext<TestData>& x) { return perform(x, true); }
    boost::asio::awaitable<void> e(StepContext<TestData>& x) { return perform(x, false); }
    boost::asio::awaitable<void> undo_e(StepContext<TestData>& x) { return perform(x, true); }

    std::vector<std::string> compensation_calls() const {
        std::vector<std::string> out;
        for (const auto& c : calls) {
            if (!c.empty() && c[0] == '~') out.push_back(c);
        }
        return out;
    }

private:
    boost::asio::awaitable<void> perform(StepContext<TestData>& ctx, bool compensating) {
        const std::string step(ctx.step());
        calls.push_back((compensating ? "~" : "") + step + "#" + std::to_string(ctx.attempt()));
        idempotency_keys.push_back(ctx.idempotency_key());
        if (auto& down = unavailable_tries[(compensating ? "~" : "") + step]; down > 0) {
            --down;
            throw Unavailable(step + ": the service it calls does not answer");
        }
        const Plan& plan = plans[step];
        const auto& seq = compensating ? plan.compensations : plan.actions;
        const Act act = seq.empty() ? Act::ok : seq[std::min<std::size_t>(ctx.attempt() - 1, seq.size() - 1)];
        ++in_flight;
        max_in_flight = std::max(max_in_flight, in_flight);
        struct Leave {
            int& n;
            ~Leave() { --n; }
        } leave{in_flight};
        switch (act) {
            case Act::ok: break;
            case Act::fail: throw std::runtime_error(step + " failed (transient)");
            case Act::dirty_fail:  // changes the data, then fails
                ctx.data().trail.push_back(step + "!");
                throw std::runtime_error(step + " failed after writing");
            case Act::reject: throw Rejection(step + " rejected");
            case Act::hang: {
                boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, std::chrono::hours(1));
                co_await t.async_wait(boost::asio::use_awaitable);  // only cancellation ends it
                break;
            }
            case Act::slow_ok: {
                boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, plan.slow);
                co_await t.async_wait(boost::asio::use_awaitable);
                break;
            }
        }
        if (!compensating) {
            ctx.data().value += 1;
            ctx.data().trail.push_back(step);
        }
    }
};

using Steps = ScriptedSaga;
using FourSteps = Saga<Step<"a", &Steps::a, &Steps::undo_a>, Step<"b", &Steps::b, &Steps::undo_b>,
                       Step<"c", &Steps::c, &Steps::undo_c>, Step<"d", &Steps::d, &Steps::undo_d>>;

// fast policies so tests do not wait for the design's 1 s retry delay
inline SagaOptions fast_options(int attempts = 3, int comp_attempts = 3) {
    SagaOptions o;
    o.defaults.retry = RetryPolicy{attempts, std::chrono::milliseconds(1), 2.0, std::chrono::milliseconds(10), 0.0};
    o.defaults.compensation_retry =
        RetryPolicy{comp_attempts, std::chrono::milliseconds(1), 2.0, std::chrono::milliseconds(10), 0.0};
    o.defaults.timeout = std::chrono::milliseconds(2000);
    o.defaults.compensation_timeout = std::chrono::milliseconds(2000);
    return o;
}

}  // namespace boong::test
