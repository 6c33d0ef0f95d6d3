// Everything of Boong's core in one include.
#pragma once

#include <boong/broker.hpp>
#include <boong/config.hpp>
#include <boong/error.hpp>
#include <boong/event.hpp>
#include <boong/event_store.hpp>
#include <boong/policy.hpp>
#include <boong/saga.hpp>
#include <boong/saga_runner.hpp>
#include <boong/saga_state.hpp>
