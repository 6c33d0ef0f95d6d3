// boong outbox status, boong consumers: how far the relays have published,
// and how the consumer groups of a topic stand.
#include "commands.hpp"
#include "exit_status.hpp"
#include "output.hpp"
#include "time_text.hpp"

#include <boong/postgres/outbox.hpp>
#include <boong/postgres/transaction.hpp>
#if BOONG_HAS_REDIS
#include <boong/redis/broker.hpp>
#endif

#include <boost/asio/use_awaitable.hpp>

#include <pqxx/pqxx>

#include <algorithm>
#include <iostream>
#include <memory>
#include <set>

namespace boong::cli {

namespace asio = boost::asio;

namespace {

// ---- outbox status ----------------------------------------------------------------

void outbox_status(const GlobalOptions& global, const std::vector<std::string>& relays_asked) {
    asio::io_context ioc;
    StoreConnection c(ioc, effective_config(global));
    std::vector<std::string> relays = relays_asked;
    if (relays.empty()) {
        // Every relay that ever ran has a cursor row.
        const std::string table = c.store().tables().outbox;
        auto names = [table](pqxx::transaction_base& tx) {
            std::vector<std::string> out;
            for (const auto& row : tx.exec("SELECT relay FROM " + table + " ORDER BY relay")) out.emplace_back(row[0].c_str());
            return out;
        };
        auto op = async_transact(c.store(), std::move(names), Durability::relaxed, asio::use_awaitable);
        try {
            relays = c.run(std::move(op));
        } catch (...) {
            throw command_error(std::current_exception());
        }
    }
    PostgresOutbox outbox(c.store());
    std::vector<OutboxStatus> statuses;
    for (const auto& r : relays) {
        try {
            statuses.push_back(c.run(outbox.async_status(r, asio::use_awaitable)));
        } catch (...) {
            throw command_error(std::current_exception());
        }
    }
    const auto now = Clock::now();
    if (global.json) {
        json out = json::array();
        for (const auto& s : statuses) {
            out.push_back({{"relay", s.relay},
                           {"position", s.position},
                           {"pending", s.pending},
                           {"owner", s.owner.empty() ? json(nullptr) : json(s.owner)},
                           {"lease_until", json_time(s.lease_until)},
                           {"lease_expired", s.lease_until ? json(*s.lease_until < now) : json(nullptr)}});
        }
        print_json(std::cout, json{{"relays", out}});
        return;
    }
    if (statuses.empty()) {
        std::cout << "No outbox relay has run against this store.\n";
        return;
    }
    Table t({"RELAY", "POSITION", "PENDING", "OWNER", "LEASE"});
    for (const auto& s : statuses) {
        std::string lease;
        Colour lease_colour = Colour::none;
        if (s.lease_until) {
            const auto left = std::chrono::duration_cast<milliseconds>(*s.lease_until - now);
            lease = left.count() >= 0 ? format_duration(left) + " left" : "expired " + format_duration(-left) + " ago";
            if (left.count() < 0) lease_colour = Colour::yellow;
        }
        t.add({s.relay, std::to_string(s.position), Cell(std::to_string(s.pending), s.pending > 0 ? Colour::yellow : Colour::none),
               s.owner, Cell(lease, lease_colour)});
    }
    t.print(std::cout, stdout_wants_colour());
}

// ---- consumers ------------------------------------------------------------------------

#if BOONG_HAS_REDIS
// What only Redis can tell beyond the broker contract: the topics (streams) there are.
class RedisProbe {
public:
    RedisProbe(asio::io_context& ioc, const RedisBrokerConfig& config) : ioc_(ioc), redis_(ioc.get_executor(), config) {}

    json command(std::vector<std::string> argv) {
        try {
            return run_to_completion(ioc_, redis_.async_command(std::move(argv), asio::use_awaitable));
        } catch (...) {
            throw command_error(std::current_exception());
        }
    }

    // Streams that are topics: not dead letters, and with consumer groups or not.
    std::vector<std::string> topics() {
        std::set<std::string> found;
        std::string cursor = "0";
        do {
            const json reply = command({"SCAN", cursor, "TYPE", "stream", "COUNT", "1000"});
            cursor = reply.at(0).get<std::string>();
            for (const auto& key : reply.at(1)) {
                const auto name = key.get<std::string>();
                if (!name.ends_with(".dlq")) found.insert(name);
            }
        } while (cursor != "0");
        return {found.begin(), found.end()};
    }

private:
    asio::io_context& ioc_;
    RedisBroker redis_;
};

#else
// Built without Redis: nothing to probe.
class RedisProbe {
public:
    RedisProbe(asio::io_context&, const RedisBrokerConfig&) {}
    std::vector<std::string> topics() { return {}; }
};
#endif

struct GroupRow {
    std::string topic;
    ConsumerGroupStatus status;
};

// RabbitMQ cannot list a topic's queues: the groups it can show are those the
// config declares (messageBroker.options.groups). A topic asked for that has
// none there would show as having no groups, which is not known: refused.
void require_rabbitmq_groups(const RabbitMqBrokerConfig& config, const std::vector<std::string>& topics) {
    for (const auto& topic : topics) {
        const bool known = std::any_of(config.groups.begin(), config.groups.end(),
                                       [&](const auto& entry) { return entry.first == topic && !entry.second.empty(); });
        if (!known) {
            throw CommandError(ExitStatus::usage,
                               "RabbitMQ cannot list the consumer groups of a topic: name those of \"" + topic +
                                   "\" in the config's messageBroker.options.groups (as the services that consume "
                                   "it do)");
        }
    }
}

void consumers(const GlobalOptions& global, const std::vector<std::string>& topics_asked) {
    const Config config = effective_config(global);
    // RabbitMQ cannot list topics or groups, and shows no pending counts (see ConsumerGroupStatus).
    const bool rabbitmq = config.message_broker.type == MessageBrokerConfig::Type::rabbitmq;
    std::vector<std::string> topics = topics_asked;
    if (rabbitmq) {
        if (topics.empty()) {
            // RabbitMQ cannot list them: the topics of the configured groups.
            for (const auto& [topic, groups] : config.message_broker.rabbitmq.groups) topics.push_back(topic);
            if (topics.empty()) {
                throw CommandError(ExitStatus::usage, "RabbitMQ cannot list topics: give --topic T, or a --config "
                                                      "whose messageBroker.options.groups names them");
            }
        }
        require_rabbitmq_groups(config.message_broker.rabbitmq, topics);
    }
    asio::io_context ioc;
    AnyBroker broker = open_broker(ioc, config);
    std::optional<RedisProbe> probe;
    if (config.message_broker.type == MessageBrokerConfig::Type::redis_streams) probe.emplace(ioc, config.message_broker.redis);
    if (topics.empty() && probe) topics = probe->topics();
    std::vector<GroupRow> rows;
    for (const auto& topic : topics) {
        std::vector<ConsumerGroupStatus> groups;
        try {
            groups = run_to_completion(ioc, broker.async_consumer_groups(topic, asio::use_awaitable));
        } catch (...) {
            throw command_error(std::current_exception());
        }
        for (auto& g : groups) rows.push_back(GroupRow{topic, std::move(g)});
    }
    const auto now = Clock::now();
    if (global.json) {
        json out = json::array();
        for (const auto& r : rows) {
            out.push_back({{"topic", r.topic},
                           {"group", r.status.group},
                           {"consumers", r.status.consumers},
                           {"pending", r.status.pending ? json(*r.status.pending) : json(nullptr)},
                           {"lag", r.status.lag ? json(*r.status.lag) : json(nullptr)},
                           {"trimmed", r.status.trimmed ? json(*r.status.trimmed) : json(nullptr)},
                           {"oldest_pending_at", json_time(r.status.oldest_pending)}});
        }
        print_json(std::cout, json{{"groups", out}});
        return;
    }
    if (rows.empty()) {
        std::cout << "No consumer groups.\n";
        return;
    }
    Table t({"TOPIC", "GROUP", "CONSUMERS", "PENDING", "LAG", "TRIMMED", "OLDEST PENDING"});
    bool lost = false;
    for (const auto& r : rows) {
        const auto& s = r.status;
        lost = lost || s.trimmed.value_or(0) > 0;
        t.add({r.topic, s.group, std::to_string(s.consumers),
               s.pending ? Cell(std::to_string(*s.pending), *s.pending > 0 ? Colour::yellow : Colour::none) : Cell("?"),
               s.lag ? Cell(std::to_string(*s.lag), *s.lag > 0 ? Colour::yellow : Colour::none) : Cell("?"),
               s.trimmed ? Cell(std::to_string(*s.trimmed), *s.trimmed > 0 ? Colour::red : Colour::none) : Cell("?"),
               s.oldest_pending ? format_duration(std::chrono::duration_cast<milliseconds>(now - *s.oldest_pending)) + " ago"
                                : std::string(s.pending ? "" : "?")});
    }
    t.print(std::cout, stdout_wants_colour());
    if (lost) {
        std::cout << "TRIMMED: messages the topic's length or age limit (maxLen, ttl) removed before the group read "
                     "them; they are lost to it. Raise the limits above what the slowest group may trail by.\n";
    }
    if (rabbitmq) {
        std::cout << "?: RabbitMQ does not show a queue's unacknowledged messages over AMQP (rabbitmqctl list_queues "
                     "name messages_unacknowledged does); LAG is the messages ready in the group's queue. Boong "
                     "declares queues without a length limit; a policy that sets one with overflow drop-head drops "
                     "messages unseen (TRIMMED ?): use reject-publish.\n";
    }
}

}  // namespace

void add_status_commands(CLI::App& app, const GlobalOptions& global, CommandAction& action) {
    auto* outbox = app.add_subcommand("outbox", "The outbox relays of the event store");
    outbox->require_subcommand(1);
    auto relays = std::make_shared<std::vector<std::string>>();
    auto* status = outbox->add_subcommand("status", "Where each relay stands: position, events pending, owner, lease");
    status->add_option("--relay", *relays, "Only this relay (repeatable)");
    status->callback([&action, &global, relays] { action = [&global, relays] { outbox_status(global, *relays); }; });

    auto topics = std::make_shared<std::vector<std::string>>();
    auto* consumers_cmd = app.add_subcommand("consumers", "Consumer groups: consumers, pending, lag, oldest pending");
    consumers_cmd->add_option("--topic", *topics, "Only this topic (repeatable; default: every topic)");
    consumers_cmd->callback([&action, &global, topics] { action = [&global, topics] { consumers(global, *topics); }; });
}

}  // namespace boong::cli
