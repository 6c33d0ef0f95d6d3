// Everything of Boong's core in one include.
#pragma once

#include <boong/broker.hpp>
#include <boong/config.hpp>
#include <boong/domain_event.hpp>
#include <boong/error.hpp>
#include <boong/event.hpp>
#include <boong/event_bus.hpp>
#include <boong/event_store.hpp>
#include <boong/inbox.hpp>
#include <boong/observer.hpp>
#include <boong/outbox_cursor.hpp>
#include <boong/outbox_relay.hpp>
#include <boong/policy.hpp>
#include <boong/saga.hpp>
#include <boong/saga_index.hpp>
#include <boong/saga_leases.hpp>
#include <boong/saga_migration.hpp>
#include <boong/saga_orchestrator.hpp>
#include <boong/saga_cancel.hpp>
#include <boong/saga_retry.hpp>
#include <boong/saga_runner.hpp>
#include <boong/saga_state.hpp>
#include <boong/transactional_store.hpp>
