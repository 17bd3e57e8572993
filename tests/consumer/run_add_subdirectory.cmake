# Build and run a consumer that pulls hyplora in with add_subdirectory.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
endfunction()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer/add_subdirectory -B ${WORK_DIR}/app -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX} -DHYPLORA_SOURCE_DIR=${SOURCE_DIR} -DHYPLORA_ENABLE_CUDA=OFF)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/app)
run(${WORK_DIR}/app/consumer)
message(STATUS "add_subdirectory consumer OK")
