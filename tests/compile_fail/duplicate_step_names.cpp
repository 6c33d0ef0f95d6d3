// expect: boong::Saga: two steps have the same name
// A bad Saga<...> fails where it is written, even if nothing uses it.
#include "common.hpp"

using Doubled = boong::Saga<boong::Step<"reserve", &OrderSteps::reserve, &OrderSteps::release>,
                            boong::Step<"reserve", &OrderSteps::charge>>;
int main() {}
