# Install hyplora to a temporary prefix, then build and run a consumer with find_package.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
endfunction()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX}
    -DHYPLORA_BUILD_TESTS=OFF -DHYPLORA_BUILD_BENCHMARKS=OFF -DHYPLORA_BUILD_EXAMPLES=OFF
    -DHYPLORA_INSTALL=ON -DHYPLORA_ENABLE_CUDA=OFF -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
if(NOT EXISTS ${WORK_DIR}/prefix/share/pkgconfig/hyplora.pc)
  message(FATAL_ERROR "no pkg-config file installed")
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer/find_package -B ${WORK_DIR}/app -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/app)
run(${WORK_DIR}/app/consumer)
message(STATUS "find_package consumer OK")
