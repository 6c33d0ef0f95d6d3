#include <boong/prometheus/metrics.hpp>

#include <boong/saga.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace boong {

namespace {

using prometheus::Histogram;
using Labels = std::map<std::string, std::string>;

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

std::string_view phase(bool compensation) { return compensation ? "compensation" : "action"; }

// Buckets, in seconds (events for the group-commit size). Each covers the
// range its operation lives in, with room above for an outage's tail.
const Histogram::BucketBoundaries& saga_buckets() {
    static const Histogram::BucketBoundaries b{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900};
    return b;
}
const Histogram::BucketBoundaries& step_buckets() {
    static const Histogram::BucketBoundaries b{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    return b;
}
const Histogram::BucketBoundaries& io_buckets() {
    static const Histogram::BucketBoundaries b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,   0.1,   0.25,   0.5,   1,    2.5};
    return b;
}
const Histogram::BucketBoundaries& batch_buckets() {
    static const Histogram::BucketBoundaries b{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
    return b;
}

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& r, const char* name, const char* help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}
prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& r, const char* name, const char* help) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}
prometheus::Family<Histogram>& histogram(prometheus::Registry& r, const char* name, const char* help) {
    return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}

}  // namespace

PrometheusObserver::PrometheusObserver(prometheus::Registry& registry)
    : sagas_started_(counter(registry, "boong_sagas_started_total", "Sagas started, by saga type")),
      sagas_ended_(counter(registry, "boong_sagas_ended_total",
                           "Saga runs that reached an outcome (completed, compensated, or failed: a compensation "
                           "gave up and the saga needs an operator), by saga type")),
      sagas_interrupted_(counter(registry, "boong_sagas_interrupted_total",
                                 "Saga runs that ended without an outcome (shutdown, store unreachable, lease "
                                 "lost); the saga stays resumable")),
      saga_duration_(histogram(registry, "boong_saga_duration_seconds",
                               "How long saga runs took in this process, from start or resume to their outcome")),
      sagas_in_flight_(gauge(registry, "boong_sagas_in_flight", "Sagas running in this process now, by saga type")),
      step_duration_(histogram(registry, "boong_step_duration_seconds",
                               "How long step attempts took, by saga type, step, phase (action or compensation) "
                               "and outcome")),
      step_retries_(counter(registry, "boong_step_retries_total",
                            "Failed step attempts that will be tried again, by saga type, step and phase")),
      claims_(counter(registry, "boong_orchestrator_claims_total", "Sagas an orchestrator claimed, by saga type")),
      lost_sagas_(counter(registry, "boong_orchestrator_lost_sagas_total",
                          "Sagas an orchestrator found claimed by another while running them")),
      self_fencing_(counter(registry, "boong_orchestrator_self_fencing_total",
                            "Times an orchestrator stopped its sagas because it could not prove its leases")),
      renewal_failures_(counter(registry, "boong_orchestrator_renewal_failures_total",
                                "Lease renewals that failed")),
      sagas_blocked_(counter(registry, "boong_sagas_blocked_total",
                             "Sagas blocked: no runner serves their definition, or resuming them failed")),
      messages_(counter(registry, "boong_messages_total",
                        "Messages whose handler ran, by topic, group and outcome (handled, failed, "
                        "dead_lettered, unavailable)")),
      redelivered_(counter(registry, "boong_messages_redelivered_total",
                           "Messages delivered again (a handler failed or a consumer died before acknowledging)")),
      handler_duration_(histogram(registry, "boong_message_handler_duration_seconds",
                                  "How long message handlers took, by topic, group and outcome")),
      dead_lettered_(counter(registry, "boong_messages_dead_lettered_total",
                             "Messages moved to the dead letters, by topic, group and reason")),
      consumer_paused_(gauge(registry, "boong_consumer_paused",
                             "Consumers of the topic and group that stopped fetching while a dependency is "
                             "unavailable (0 or 1 for one consumer)")),
      consumer_pending_(gauge(registry, "boong_consumer_pending_messages",
                              "Messages delivered to the topic's group and not acknowledged yet, as last sampled "
                              "(absent where the broker cannot tell: RabbitMQ)")),
      consumer_lag_(gauge(registry, "boong_consumer_lag_messages",
                          "Messages of the topic not delivered to the group yet, as last sampled")),
      consumer_oldest_pending_(gauge(registry, "boong_consumer_oldest_pending_seconds",
                                     "Age of the oldest message the group has pending (0 when none), as last "
                                     "sampled (absent where the broker cannot tell: RabbitMQ)")),
      trimmed_unread_(gauge(registry, "boong_consumer_trimmed_unread_messages",
                            "Messages a length or age limit trimmed from the topic before the group read them "
                            "(lost to it), the broker's total as last sampled (absent where it cannot tell)")),
      trimmed_pending_(counter(registry, "boong_consumer_trimmed_pending_messages_total",
                               "Messages delivered to the group, not acknowledged, and trimmed from the topic "
                               "before they could be delivered again (lost to it), as its consumers found them")),
      publish_duration_(histogram(registry, "boong_publish_duration_seconds", "How long publishes took, by topic")),
      publish_errors_(counter(registry, "boong_publish_errors_total", "Publishes that failed, by topic")),
      outbox_lag_events_(gauge(registry, "boong_outbox_lag_events",
                               "Events stored but not yet published by the outbox relay")
                             .Add({})),
      outbox_lag_seconds_(gauge(registry, "boong_outbox_lag_seconds",
                                "Age of the oldest event the outbox relay has not published yet (0 when caught up)")
                              .Add({})),
      append_duration_(histogram(registry, "boong_store_append_duration_seconds",
                                 "How long the PostgreSQL store's group commits took")
                           .Add({}, io_buckets())),
      group_commit_events_(histogram(registry, "boong_store_group_commit_events",
                                     "Events stored by one group commit of the PostgreSQL store")
                               .Add({}, batch_buckets())),
      pool_wait_(histogram(registry, "boong_store_pool_wait_seconds",
                           "How long operations waited for a connection of the PostgreSQL store's pool")
                     .Add({}, io_buckets())) {}

// ---- sagas ------------------------------------------------------------------

void PrometheusObserver::saga_started(std::string_view saga_type) {
    Labels labels{{"saga_type", std::string(saga_type)}};
    sagas_started_.Add(labels).Increment();
    sagas_in_flight_.Add(labels).Increment();
}

void PrometheusObserver::saga_resumed(std::string_view saga_type) {
    sagas_in_flight_.Add({{"saga_type", std::string(saga_type)}}).Increment();
}

void PrometheusObserver::saga_ended(std::string_view saga_type, SagaStatus status,
                                    std::chrono::nanoseconds duration) {
    Labels labels{{"saga_type", std::string(saga_type)}};
    sagas_in_flight_.Add(labels).Decrement();
    labels.emplace("outcome", std::string(to_string(status)));
    sagas_ended_.Add(labels).Increment();
    saga_duration_.Add(labels, saga_buckets()).Observe(seconds(duration));
}

void PrometheusObserver::saga_interrupted(std::string_view saga_type) {
    Labels labels{{"saga_type", std::string(saga_type)}};
    sagas_in_flight_.Add(labels).Decrement();
    sagas_interrupted_.Add(labels).Increment();
}

void PrometheusObserver::step_attempted(std::string_view saga_type, std::string_view step, bool compensation,
                                        std::string_view outcome, std::chrono::nanoseconds duration) {
    step_duration_
        .Add({{"saga_type", std::string(saga_type)},
              {"step", std::string(step)},
              {"phase", std::string(phase(compensation))},
              {"outcome", std::string(outcome)}},
             step_buckets())
        .Observe(seconds(duration));
}

void PrometheusObserver::step_retried(std::string_view saga_type, std::string_view step, bool compensation) {
    step_retries_
        .Add({{"saga_type", std::string(saga_type)},
              {"step", std::string(step)},
              {"phase", std::string(phase(compensation))}})
        .Increment();
}

// ---- orchestrators ------------------------------------------------------------

void PrometheusObserver::saga_claimed(std::string_view saga_type, std::size_t count) {
    claims_.Add({{"saga_type", std::string(saga_type)}}).Increment(static_cast<double>(count));
}

void PrometheusObserver::saga_lost(std::string_view saga_type) {
    lost_sagas_.Add({{"saga_type", std::string(saga_type)}}).Increment();
}

void PrometheusObserver::orchestrator_fenced(std::string_view saga_type) {
    self_fencing_.Add({{"saga_type", std::string(saga_type)}}).Increment();
}

void PrometheusObserver::lease_renewal_failed(std::string_view saga_type) {
    renewal_failures_.Add({{"saga_type", std::string(saga_type)}}).Increment();
}

void PrometheusObserver::saga_blocked(std::string_view saga_type) {
    sagas_blocked_.Add({{"saga_type", std::string(saga_type)}}).Increment();
}

// ---- consumers ------------------------------------------------------------------

void PrometheusObserver::message_handled(std::string_view topic, std::string_view group, std::string_view outcome,
                                         std::chrono::nanoseconds duration) {
    const Labels labels{{"topic", std::string(topic)}, {"group", std::string(group)}, {"outcome", std::string(outcome)}};
    messages_.Add(labels).Increment();
    handler_duration_.Add(labels, step_buckets()).Observe(seconds(duration));
}

void PrometheusObserver::message_redelivered(std::string_view topic, std::string_view group) {
    redelivered_.Add({{"topic", std::string(topic)}, {"group", std::string(group)}}).Increment();
}

void PrometheusObserver::message_dead_lettered(std::string_view topic, std::string_view group,
                                               std::string_view reason) {
    dead_lettered_.Add({{"topic", std::string(topic)}, {"group", std::string(group)}, {"reason", std::string(reason)}})
        .Increment();
}

void PrometheusObserver::consumer_paused(std::string_view topic, std::string_view group, bool paused) {
    auto& g = consumer_paused_.Add({{"topic", std::string(topic)}, {"group", std::string(group)}});
    if (paused) {
        g.Increment();
    } else {
        g.Decrement();
    }
}

namespace {

// Sets the series of `labels` to `value`; removes it when the value is unknown,
// so that a dashboard shows "no data" rather than a stale or made-up figure.
void set_or_remove(prometheus::Family<prometheus::Gauge>& family, const Labels& labels, std::optional<double> value) {
    if (value) {
        family.Add(labels).Set(*value);
    } else if (family.Has(labels)) {
        family.Remove(&family.Add(labels));
    }
}

}  // namespace

void PrometheusObserver::consumer_backlog(std::string_view topic, std::string_view group,
                                          std::optional<std::size_t> pending, std::optional<std::size_t> lag,
                                          std::optional<std::chrono::nanoseconds> oldest_pending_age) {
    const Labels labels{{"topic", std::string(topic)}, {"group", std::string(group)}};
    const auto count = [](std::optional<std::size_t> n) {
        return n ? std::optional<double>(static_cast<double>(*n)) : std::nullopt;
    };
    set_or_remove(consumer_pending_, labels, count(pending));
    set_or_remove(consumer_lag_, labels, count(lag));
    set_or_remove(consumer_oldest_pending_, labels,
                  oldest_pending_age ? std::optional<double>(seconds(*oldest_pending_age)) : std::nullopt);
}

void PrometheusObserver::consumer_trimmed_unread(std::string_view topic, std::string_view group,
                                                 std::size_t unread) {
    trimmed_unread_.Add({{"topic", std::string(topic)}, {"group", std::string(group)}})
        .Set(static_cast<double>(unread));
}

void PrometheusObserver::consumer_trimmed_pending(std::string_view topic, std::string_view group,
                                                  std::size_t pending) {
    trimmed_pending_.Add({{"topic", std::string(topic)}, {"group", std::string(group)}})
        .Increment(static_cast<double>(pending));
}

// ---- publishing and the outbox relay ----------------------------------------------

void PrometheusObserver::published(std::string_view topic, bool ok, std::chrono::nanoseconds duration) {
    const Labels labels{{"topic", std::string(topic)}};
    publish_duration_.Add(labels, io_buckets()).Observe(seconds(duration));
    if (!ok) publish_errors_.Add(labels).Increment();
}

void PrometheusObserver::outbox_lag(std::int64_t events, std::chrono::nanoseconds age) {
    outbox_lag_events_.Set(static_cast<double>(events));
    outbox_lag_seconds_.Set(seconds(age));
}

// ---- the store ------------------------------------------------------------------------

void PrometheusObserver::appended(std::size_t events, std::chrono::nanoseconds duration) {
    append_duration_.Observe(seconds(duration));
    group_commit_events_.Observe(static_cast<double>(events));
}

void PrometheusObserver::pool_waited(std::chrono::nanoseconds duration) { pool_wait_.Observe(seconds(duration)); }

}  // namespace boong
