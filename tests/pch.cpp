// Empty: gives boong_test_main a source that compiles the shared precompiled
// header (main.cpp cannot use it), so the test executables can reuse it.
