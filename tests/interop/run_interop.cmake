# Included from tests/CMakeLists.txt when python3 exists: builds interop_dump and runs
# compare_geoopt.py against it. Exit code 77 (geoopt not importable) marks the test skipped.
add_executable(interop_dump ${CMAKE_CURRENT_LIST_DIR}/interop_dump.cpp)
target_link_libraries(interop_dump PRIVATE hyplora::hyplora hyplora_dev_flags)
add_test(NAME interop.geoopt
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/compare_geoopt.py
          --dump $<TARGET_FILE:interop_dump>)
set_tests_properties(interop.geoopt PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                     ENVIRONMENT "OMP_NUM_THREADS=1")
