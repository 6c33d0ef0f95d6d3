// Declaring a saga: a class of step/compensate member coroutines, assembled
// into a type.
//
//   struct OrderData { ... };                       // to_json/from_json defined
//   class OrderSaga {
//   public:
//       static constexpr std::string_view name = "order_processing";
//       static constexpr std::int64_t version = 1;  // optional (1); see docs/versioning.md
//       boost::asio::awaitable<void> create_order(boong::StepContext<OrderData>& ctx);
//       boost::asio::awaitable<void> cancel_order(boong::StepContext<OrderData>& ctx);
//       ...
//   };
//   using OrderProcessing = boong::Saga<
//       boong::Step<"create_order", &OrderSaga::create_order, &OrderSaga::cancel_order>,
//       boong::Parallel<
//           boong::Step<"process_payment", &OrderSaga::process_payment, &OrderSaga::refund_payment>,
//           boong::Step<"reserve_items", &OrderSaga::reserve_items, &OrderSaga::release_items>>,
//       boong::Step<"confirm_order", &OrderSaga::confirm_order>>;
#pragma once

#include <boong/detail/fixed_string.hpp>
#include <boong/event.hpp>
#include <boong/log.hpp>
#include <boong/saga_state.hpp>

#include <boost/asio/awaitable.hpp>

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace boong {

// What a step or compensation gets: who it is, which attempt this is, the key
// that makes its effect idempotent, and the saga's data (which a step may change;
// the change is recorded with the step's completion).
template <class Data>
class StepContext {
public:
    StepContext(const std::string& saga_id, std::string_view saga_type, std::string_view step, int attempt,
                bool compensating, Data& data, const std::string& correlation_id,
                std::chrono::steady_clock::time_point deadline, SagaLogger log, std::string_view key_step = {})
        : saga_id_(saga_id),
          saga_type_(saga_type),
          step_(step),
          attempt_(attempt),
          compensating_(compensating),
          data_(data),
          correlation_id_(correlation_id),
          deadline_(deadline),
          log_(std::move(log)),
          key_step_(key_step.empty() ? step : key_step) {}

    const std::string& saga_id() const noexcept { return saga_id_; }
    std::string_view saga_type() const noexcept { return saga_type_; }
    std::string_view step() const noexcept { return step_; }
    // 1 on the first attempt, counting up on each retry.
    int attempt() const noexcept { return attempt_; }
    bool compensating() const noexcept { return compensating_; }
    // "<saga id>:<step>" for the action and "<saga id>:<step>:compensate" for the
    // compensation: the same on every attempt and after a restart, so a service
    // that records it can refuse to apply an effect twice. A step renamed by a
    // migration keeps its former name here (saga_migration.hpp).
    const std::string& idempotency_key() const {
        if (key_.empty()) {  // built on first use: most steps never ask
            key_.reserve(saga_id_.size() + key_step_.size() + 12);
            key_.append(saga_id_).append(":").append(key_step_);
            if (compensating_) key_.append(":compensate");
        }
        return key_;
    }
    const std::string& correlation_id() const noexcept { return correlation_id_; }
    Data& data() noexcept { return data_; }
    const Data& data() const noexcept { return data_; }
    // When this attempt times out (time_point::max() without a timeout); the
    // attempt is cancelled then, so pass it on to calls that take deadlines.
    std::chrono::steady_clock::time_point deadline() const noexcept { return deadline_; }
    const SagaLogger& log() const noexcept { return log_; }

private:
    const std::string& saga_id_;
    std::string_view saga_type_;
    std::string_view step_;
    int attempt_;
    bool compensating_;
    Data& data_;
    const std::string& correlation_id_;
    std::chrono::steady_clock::time_point deadline_;
    SagaLogger log_;
    std::string_view key_step_;
    mutable std::string key_;
};

// Saga data travels in events, so it must convert to and from JSON.
template <class D>
concept SagaData = std::default_initializable<D> && std::copy_constructible<D> && requires(json j, const D& d) {
    json(d);
    j.get<D>();
};

namespace detail {

// What a member function that is not a step yields: placeholder types, so
// that a wrong signature stops at Step's one static_assert instead of a
// cascade of errors about the types it cannot name.
struct not_a_saga_class {};
struct not_saga_data {};

template <class F>
struct member_step_traits : std::false_type {
    using definition_type = not_a_saga_class;
    using data_type = not_saga_data;
};

template <class C, class D>
struct member_step_traits<boost::asio::awaitable<void> (C::*)(StepContext<D>&)> : std::true_type {
    using definition_type = C;
    using data_type = D;
};

template <class F>
concept step_member = member_step_traits<F>::value;

}  // namespace detail

// One step: a stable name (recorded in events; renaming a step breaks resuming
// sagas recorded under the old name), an action and an optional compensation.
template <detail::fixed_string Name, auto Action, auto Compensation = nullptr>
struct Step {
    static_assert(detail::step_member<decltype(Action)>,
                  "boong::Step: the action must be a member function of the saga class declared as "
                  "`boost::asio::awaitable<void> f(boong::StepContext<Data>& ctx)`");
    static_assert(std::is_null_pointer_v<decltype(Compensation)> || detail::step_member<decltype(Compensation)>,
                  "boong::Step: the compensation must be nullptr or a member function of the saga class "
                  "declared as `boost::asio::awaitable<void> f(boong::StepContext<Data>& ctx)`");
    static_assert(!Name.view().empty(), "boong::Step: a step needs a non-empty name");

    using traits = detail::member_step_traits<decltype(Action)>;
    using definition_type = typename traits::definition_type;
    using data_type = typename traits::data_type;

    static_assert(!detail::step_member<decltype(Action)> || !detail::step_member<decltype(Compensation)> ||
                      std::is_same_v<decltype(Compensation), decltype(Action)>,
                  "boong::Step: the action and the compensation must belong to the same class and take the "
                  "same StepContext<Data>");

    static constexpr std::string_view name = Name.view();
    static constexpr auto action = Action;
    static constexpr auto compensation = Compensation;
    static constexpr bool has_compensation = !std::is_null_pointer_v<decltype(Compensation)>;
    // Whether the step is well formed (its own static_asserts said why not).
    static constexpr bool valid =
        detail::step_member<decltype(Action)> &&
        (std::is_null_pointer_v<decltype(Compensation)> || std::is_same_v<decltype(Compensation), decltype(Action)>);
};

// Steps run concurrently: all start together, the saga moves on when all have
// completed. If one fails, the others are cancelled, and every step of the
// group that completed is compensated.
template <class... Steps>
struct Parallel {
    static_assert(sizeof...(Steps) >= 1, "boong::Parallel: a parallel group needs at least one step");
};

namespace detail {

template <class T>
struct is_step : std::false_type {};
template <fixed_string N, auto A, auto C>
struct is_step<Step<N, A, C>> : std::true_type {};

template <class T>
struct stage_traits {
    static_assert(is_step<T>::value, "boong::Saga: every argument must be a boong::Step<...> or a "
                                     "boong::Parallel<Step<...>...>");
    using steps = std::tuple<T>;
};
template <class... S>
struct stage_traits<Parallel<S...>> {
    static_assert(sizeof...(S) >= 1, "boong::Parallel: a parallel group needs at least one step");
    static_assert((is_step<S>::value && ...), "boong::Parallel: only boong::Step<...> may be grouped (no nesting)");
    using steps = std::tuple<S...>;
};

template <class... Tuples>
using tuple_cat_t = decltype(std::tuple_cat(std::declval<Tuples>()...));

}  // namespace detail

// A step as the engine sees it, type-erased over the step's member pointers.
template <class Definition, class Data>
struct StepDescriptor {
    using Fn = boost::asio::awaitable<void> (*)(Definition&, StepContext<Data>&);
    std::string_view name;
    Fn action;
    Fn compensation;  // nullptr when the step has none
    std::size_t stage;
};

// A step's place in a definition: its name, whether it has a compensation,
// and the index of its stage (the steps of a parallel group share one).
struct StepPlace {
    std::string_view name;
    bool has_compensation = false;
    std::size_t stage = 0;
};

namespace detail {

// The saga class's stable name, or "" when it has none (Saga's static_assert says so).
template <class C>
constexpr std::string_view saga_class_name() {
    if constexpr (requires { { C::name } -> std::convertible_to<std::string_view>; }) {
        return C::name;
    } else {
        return {};
    }
}

// The saga class's definition version: its `version` member, 1 without one.
template <class C>
constexpr std::int64_t saga_class_version() {
    if constexpr (requires { { C::version } -> std::convertible_to<std::int64_t>; }) {
        return C::version;
    } else {
        return 1;
    }
}

// The text a definition's fingerprint is taken of (see SagaType::shape).
std::string saga_fingerprint(std::string_view shape);

// What boong::Saga<...> names (see there).
template <class... Stages>
struct SagaType {
    static_assert(sizeof...(Stages) >= 1, "boong::Saga: a saga needs at least one step");

    using all_steps = detail::tuple_cat_t<typename detail::stage_traits<Stages>::steps...>;
    using first_step = std::tuple_element_t<0, all_steps>;
    using definition_type = typename first_step::definition_type;
    using data_type = typename first_step::data_type;

    static constexpr std::size_t step_count = std::tuple_size_v<all_steps>;
    static constexpr std::size_t stage_count = sizeof...(Stages);

private:
    template <std::size_t... I>
    static constexpr bool same_class(std::index_sequence<I...>) {
        return (std::is_same_v<typename std::tuple_element_t<I, all_steps>::definition_type, definition_type> &&
                ...);
    }
    template <std::size_t... I>
    static constexpr bool same_data(std::index_sequence<I...>) {
        return (std::is_same_v<typename std::tuple_element_t<I, all_steps>::data_type, data_type> && ...);
    }
    template <std::size_t... I>
    static constexpr std::array<std::string_view, step_count> names(std::index_sequence<I...>) {
        return {std::tuple_element_t<I, all_steps>::name...};
    }
    static constexpr bool unique_names() {
        constexpr auto n = names(std::make_index_sequence<step_count>{});
        for (std::size_t i = 0; i < n.size(); ++i)
            for (std::size_t j = i + 1; j < n.size(); ++j)
                if (n[i] == n[j]) return false;
        return true;
    }

    template <std::size_t... I>
    static constexpr bool steps_valid(std::index_sequence<I...>) {
        return (std::tuple_element_t<I, all_steps>::valid && ...);
    }
    // A step that is not well formed has said why; the checks below would
    // only repeat it in other words.
    static constexpr bool checked = steps_valid(std::make_index_sequence<step_count>{});

    static_assert(!checked || same_class(std::make_index_sequence<step_count>{}),
                  "boong::Saga: all steps must be member functions of the same saga class");
    static_assert(!checked || same_data(std::make_index_sequence<step_count>{}),
                  "boong::Saga: all steps must take the same StepContext<Data>");
    static_assert(unique_names(), "boong::Saga: two steps have the same name; step names must be unique");
    static_assert(!checked || SagaData<data_type>,
                  "boong::Saga: the saga data must be default-constructible, copyable and convertible to and "
                  "from nlohmann::json (define to_json/from_json, e.g. with NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE)");
    static_assert(!checked || requires { { definition_type::name } -> std::convertible_to<std::string_view>; },
                  "boong::Saga: the saga class must declare `static constexpr std::string_view name = \"...\";` "
                  "(its stable type name, recorded in events)");
    static_assert(!checked || saga_class_version<definition_type>() >= 1,
                  "boong::Saga: the saga class's `static constexpr std::int64_t version` must be >= 1");

    template <class S>
    static boost::asio::awaitable<void> call_action(definition_type& d, StepContext<data_type>& c) {
        return (d.*S::action)(c);
    }
    template <class S>
    static boost::asio::awaitable<void> call_compensation(definition_type& d, StepContext<data_type>& c) {
        return (d.*S::compensation)(c);
    }

    template <class S>
    static void describe(std::vector<StepDescriptor<definition_type, data_type>>& out, std::size_t stage) {
        typename StepDescriptor<definition_type, data_type>::Fn comp = nullptr;
        if constexpr (S::has_compensation) comp = &call_compensation<S>;
        out.push_back({S::name, &call_action<S>, comp, stage});
    }
    template <class Stage, class S>
    static constexpr void place(std::array<StepPlace, step_count>& out, std::size_t& i, std::size_t stage) {
        out[i++] = StepPlace{S::name, S::has_compensation, stage};
    }
    template <class Stage>
    static constexpr void place_stage(std::array<StepPlace, step_count>& out, std::size_t& i, std::size_t stage) {
        std::apply([&](auto... s) { (place<Stage, decltype(s)>(out, i, stage), ...); },
                   typename detail::stage_traits<Stage>::steps{});
    }
    static constexpr std::array<StepPlace, step_count> make_places() {
        std::array<StepPlace, step_count> out{};
        std::size_t i = 0;
        std::size_t stage = 0;
        (place_stage<Stages>(out, i, stage++), ...);
        return out;
    }
    template <class Stage>
    static void shape_stage(std::string& out) {
        if (!out.empty()) out += ", ";
        constexpr bool group = std::tuple_size_v<typename detail::stage_traits<Stage>::steps> > 1;
        if (group) out += '[';
        bool first = true;
        auto add = [&]<class S>(S) {
            if (!first) out += " | ";
            first = false;
            out += S::name;
            if constexpr (S::has_compensation) out += '+';
        };
        std::apply([&](auto... s) { (add(s), ...); }, typename detail::stage_traits<Stage>::steps{});
        if (group) out += ']';
    }
    template <class Stage>
    static void describe_stage(std::vector<StepDescriptor<definition_type, data_type>>& out, std::size_t stage) {
        std::apply([&](auto... s) { (describe<decltype(s)>(out, stage), ...); },
                   typename detail::stage_traits<Stage>::steps{});
    }

public:
    static constexpr std::string_view name = saga_class_name<definition_type>();
    // The definition's version, as its class declares it (1 when it does not).
    // Bump it whenever a change would make a saga started on the old
    // definition end wrongly on the new one (docs/versioning.md).
    static constexpr std::int64_t version = saga_class_version<definition_type>();

    // The ordered steps as text: stages separated by ", ", a parallel group in
    // brackets with " | " between its steps, "+" after a step that has a
    // compensation: "create_order+, [process_payment+ | reserve_items+], confirm_order".
    static const std::string& shape() {
        static const std::string text = [] {
            std::string out;
            if constexpr (checked) (shape_stage<Stages>(out), ...);
            return out;
        }();
        return text;
    }
    // 16 hex digits of a 64-bit hash of shape(): recorded in SagaStarted with
    // the version, so that a saga resumes only on the definition it started on.
    static const std::string& fingerprint() {
        static const std::string text = saga_fingerprint(shape());
        return text;
    }

    // The steps in declaration order, at compile time: what a migration
    // between versions is checked against (saga_migration.hpp).
    static constexpr std::array<StepPlace, step_count> places = make_places();

    // The steps in declaration order, each with the index of its stage.
    static std::vector<StepDescriptor<definition_type, data_type>> steps() {
        std::vector<StepDescriptor<definition_type, data_type>> out;
        if constexpr (checked) {  // else the static_asserts above have said why
            out.reserve(step_count);
            std::size_t stage = 0;
            (describe_stage<Stages>(out, stage++), ...);
        }
        return out;
    }
};

}  // namespace detail

// A saga type: stages run in order; a stage is a Step or a Parallel group.
// Naming it checks it (`using OrderProcessing = boong::Saga<...>;` fails
// there, with the reason, when a step is not well formed), even before
// anything uses it.
template <class... Stages>
using Saga = std::enable_if_t<sizeof(detail::SagaType<Stages...>) != 0, detail::SagaType<Stages...>>;

template <class T>
struct is_saga : std::false_type {};
template <class... S>
struct is_saga<detail::SagaType<S...>> : std::true_type {};

namespace detail {

template <class T>
inline constexpr bool always_false = false;

}  // namespace detail

// The result of running a saga to an end.
enum class SagaStatus {
    completed,    // every step completed
    compensated,  // a step failed (or the saga was cancelled); completed steps were compensated
    failed,       // a compensation gave up: needs an operator, then resume()
};

std::string_view to_string(SagaStatus s) noexcept;

template <class Data>
struct SagaOutcome {
    std::string saga_id;
    SagaStatus status = SagaStatus::completed;
    std::string failed_step;                      // the step whose failure started compensation
    FailureKind failure_kind = FailureKind::none;
    std::string error;                            // that step's last error
    std::vector<std::string> compensated_steps;   // in the order they were compensated
    std::string failed_compensation;              // failed: the step whose compensation gave up
    std::string compensation_error;
    std::int64_t version = 0;                     // the saga stream's version at the end
    Data data;                                    // the saga data at the end
};

}  // namespace boong
