# lit + FileCheck tests of the compiler (dialect, passes, lorac import).
set(LORAC_LIT_PY /usr/lib/llvm-19/build/utils/lit/lit.py CACHE FILEPATH "lit.py")
set(LORAC_LIT_PYTHON /usr/bin/python3 CACHE FILEPATH "Python for lit (Debian's)")
set(LORAC_LLVM_TOOLS_DIR ${LLVM_TOOLS_BINARY_DIR})
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/lit/lit.site.cfg.py.in
               ${CMAKE_CURRENT_BINARY_DIR}/lit/lit.site.cfg.py @ONLY)
add_test(NAME lit
  COMMAND ${LORAC_LIT_PYTHON} ${LORAC_LIT_PY} -sv ${CMAKE_CURRENT_BINARY_DIR}/lit)
set_tests_properties(lit PROPERTIES LABELS "compiler")
add_custom_target(check-lit
  COMMAND ${LORAC_LIT_PYTHON} ${LORAC_LIT_PY} -sv ${CMAKE_CURRENT_BINARY_DIR}/lit
  DEPENDS lorac lorac-opt
  USES_TERMINAL)

# docs/dialect.md and docs/passes.md must match the ODS they are generated
# from, and docs/kernels.md's kernel table `lorart kernels` (kernel_kinds.def).
add_test(NAME docs_up_to_date
  COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/gen-docs.sh ${PROJECT_BINARY_DIR} --check)
set_tests_properties(docs_up_to_date PROPERTIES LABELS "compiler")
