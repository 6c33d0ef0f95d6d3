// Boong's metrics for Prometheus (target Boong::prometheus, prometheus-cpp):
// an Observer that counts and times what Boong does in a service's registry.
// docs/metrics.md lists every family.
#pragma once

#include <boong/observer.hpp>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace boong {

// Registers Boong's metric families in `registry` (which must outlive it)
// and keeps them as it is told what happens. Pass it (as a shared_ptr) in
// RunnerOptions::observer, ConsumerSettings::observer,
// OutboxRelayOptions::observer, PostgresStoreOptions::observer.
//
// Labels name kinds of things, never instances: saga_type, step,
// phase (action|compensation), outcome, topic, group, reason. No saga, order
// or message id ever becomes a label. Thread-safe.
//
// Two observers on one registry share its families (a registry made with
// prometheus-cpp's default InsertBehavior::Merge; with ::Throw the second
// one throws): one observer per registry, shared, is the simplest.
class PrometheusObserver : public Observer {
public:
    explicit PrometheusObserver(prometheus::Registry& registry);

    void saga_started(std::string_view saga_type) override;
    void saga_resumed(std::string_view saga_type) override;
    void saga_ended(std::string_view saga_type, SagaStatus status, std::chrono::nanoseconds duration) override;
    void saga_interrupted(std::string_view saga_type) override;
    void step_attempted(std::string_view saga_type, std::string_view step, bool compensation,
                        std::string_view outcome, std::chrono::nanoseconds duration) override;
    void step_retried(std::string_view saga_type, std::string_view step, bool compensation) override;

    void saga_claimed(std::string_view saga_type, std::size_t count) override;
    void saga_lost(std::string_view saga_type) override;
    void orchestrator_fenced(std::string_view saga_type) override;
    void lease_renewal_failed(std::string_view saga_type) override;
    void saga_blocked(std::string_view saga_type) override;

    void message_handled(std::string_view topic, std::string_view group, std::string_view outcome,
                         std::chrono::nanoseconds duration) override;
    void message_redelivered(std::string_view topic, std::string_view group) override;
    void message_dead_lettered(std::string_view topic, std::string_view group, std::string_view reason) override;
    void consumer_paused(std::string_view topic, std::string_view group, bool paused) override;
    void consumer_backlog(std::string_view topic, std::string_view group, std::optional<std::size_t> pending,
                          std::optional<std::size_t> lag,
                          std::optional<std::chrono::nanoseconds> oldest_pending_age) override;
    void consumer_trimmed_unread(std::string_view topic, std::string_view group, std::size_t unread) override;
    void consumer_trimmed_pending(std::string_view topic, std::string_view group, std::size_t pending) override;

    void published(std::string_view topic, bool ok, std::chrono::nanoseconds duration) override;
    void outbox_lag(std::int64_t events, std::chrono::nanoseconds age) override;

    void appended(std::size_t events, std::chrono::nanoseconds duration) override;
    void pool_waited(std::chrono::nanoseconds duration) override;

private:
    using Counters = prometheus::Family<prometheus::Counter>;
    using Gauges = prometheus::Family<prometheus::Gauge>;
    using Histograms = prometheus::Family<prometheus::Histogram>;

    // sagas
    Counters& sagas_started_;
    Counters& sagas_ended_;
    Counters& sagas_interrupted_;
    Histograms& saga_duration_;
    Gauges& sagas_in_flight_;
    Histograms& step_duration_;
    Counters& step_retries_;
    // orchestrators
    Counters& claims_;
    Counters& lost_sagas_;
    Counters& self_fencing_;
    Counters& renewal_failures_;
    Counters& sagas_blocked_;
    // consumers
    Counters& messages_;
    Counters& redelivered_;
    Histograms& handler_duration_;
    Counters& dead_lettered_;
    Gauges& consumer_paused_;
    Gauges& consumer_pending_;
    Gauges& consumer_lag_;
    Gauges& consumer_oldest_pending_;
    Gauges& trimmed_unread_;
    Counters& trimmed_pending_;
    // publishing and the outbox relay
    Histograms& publish_duration_;
    Counters& publish_errors_;
    prometheus::Gauge& outbox_lag_events_;
    prometheus::Gauge& outbox_lag_seconds_;
    // the store
    prometheus::Histogram& append_duration_;
    prometheus::Histogram& group_commit_events_;
    prometheus::Histogram& pool_wait_;
};

}  // namespace boong
