# The compiler's tools (only with LORAC_BUILD_COMPILER).
add_executable(lorac-opt lorac-opt.cpp)
target_link_libraries(lorac-opt PRIVATE LoraTransforms LoraDialect MLIR)
set_target_properties(lorac-opt PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)

add_executable(lorac lorac.cpp)
target_link_libraries(lorac PRIVATE LoraFrontend LoraTransforms LoraDialect lorart_plan MLIR)
set_target_properties(lorac PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
