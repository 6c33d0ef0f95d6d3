// Context of doc blocks that restate a declaration of the library's (in a
// namespace of their own): they must stay valid C++.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <string_view>

using std::chrono::milliseconds;
