// Context of doc blocks that use the README's saga type.
#pragma once

#include "contexts/order_saga.hpp"

using OrderProcessing = boong::Saga<
    boong::Step<"create_order", &OrderSaga::create_order, &OrderSaga::cancel_order>,
    boong::Parallel<boong::Step<"process_payment", &OrderSaga::process_payment, &OrderSaga::refund_payment>,
                    boong::Step<"reserve_items", &OrderSaga::reserve_items, &OrderSaga::release_items>>,
    boong::Step<"confirm_order", &OrderSaga::confirm_order>>;

