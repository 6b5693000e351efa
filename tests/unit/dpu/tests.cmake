# Unit tests of kab-dpu, included from dpu/CMakeLists.txt.
include(Catch)
set(_dpu_tests ${CMAKE_SOURCE_DIR}/tests/unit/dpu)
add_executable(kab_dpu_unit_tests
  ${_dpu_tests}/main.cpp
  ${_dpu_tests}/test_guest_memory.cpp
  ${_dpu_tests}/test_virtqueue.cpp
  ${_dpu_tests}/test_fuse_server.cpp
  ${_dpu_tests}/test_vhost_user.cpp
  ${_dpu_tests}/test_dpu_model.cpp
  ${_dpu_tests}/test_fuse_io.cpp
  ${_dpu_tests}/test_fuzz_regressions.cpp
  ${_dpu_tests}/test_hostile_guest.cpp
  ${_dpu_tests}/test_control_plane.cpp
  ${_dpu_tests}/test_daemon.cpp
  ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_entry.cpp
  ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_vhost_entry.cpp)
target_link_libraries(kab_dpu_unit_tests PRIVATE kab_dpu Catch2::Catch2)
target_compile_definitions(kab_dpu_unit_tests PRIVATE
  KAB_DPU_TEST_DATA="${CMAKE_SOURCE_DIR}/tests/data/dpu"
  KAB_DPU_BIN="$<TARGET_FILE:kab-dpu>")
add_dependencies(kab_dpu_unit_tests kab-dpu)  # the daemon test runs the binary
# --warn NoTests: a test whose filter matches nothing (a name ctest split) fails.
catch_discover_tests(kab_dpu_unit_tests EXTRA_ARGS --warn NoTests PROPERTIES LABELS unit)
