// Context of doc blocks written inside a saga step that publishes.
#pragma once

#include "contexts/minimal.hpp"

struct PaymentData {
    std::string order_id;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PaymentData, order_id)

#undef DOC_FRAGMENT_PARAMS
#define DOC_FRAGMENT_PARAMS                                                                      \
    boong::IdGenerator &ids_, boong::json payload, boong::StepContext<PaymentData> &ctx, \
        boong::MemoryBroker &broker_
