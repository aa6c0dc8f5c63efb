# graft_library(NAME GLOB... [EXCLUDE FILE...]): a static library of graft's
# own sources (the globs, which must match something, less the excluded
# files), with graft's warnings, built only after the layer check has passed.
#
# The layer check (cmake/check_layers.sh) reads every #include of the tree
# and fails when a lower layer includes a higher one, or when code other than
# the programs (apps/*.c) and the test harness reads the environment. It runs
# before any graft library
# compiles (a wrong-way include stops the build with the offending line) and
# again as the ctest `layers`, after its own self-test.

file(GLOB_RECURSE _graft_layer_inputs CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/engine/*.[ch] ${PROJECT_SOURCE_DIR}/engine/*.cu
  ${PROJECT_SOURCE_DIR}/io/*.[ch] ${PROJECT_SOURCE_DIR}/comm/*.[ch]
  ${PROJECT_SOURCE_DIR}/models/*.[ch]
  ${PROJECT_SOURCE_DIR}/apps/*.[ch] ${PROJECT_SOURCE_DIR}/test/*.[ch])
add_custom_command(
  OUTPUT ${PROJECT_BINARY_DIR}/layers.ok
  COMMAND bash ${PROJECT_SOURCE_DIR}/cmake/check_layers.sh ${PROJECT_SOURCE_DIR}
  COMMAND ${CMAKE_COMMAND} -E touch ${PROJECT_BINARY_DIR}/layers.ok
  DEPENDS ${_graft_layer_inputs} ${PROJECT_SOURCE_DIR}/cmake/check_layers.sh
  COMMENT "Checking that no layer includes a higher one"
  VERBATIM)
add_custom_target(graft_layers ALL DEPENDS ${PROJECT_BINARY_DIR}/layers.ok)

function(graft_library name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "EXCLUDE")
  file(GLOB sources CONFIGURE_DEPENDS ${arg_UNPARSED_ARGUMENTS})
  if(arg_EXCLUDE)
    list(REMOVE_ITEM sources ${arg_EXCLUDE})
  endif()
  if(NOT sources)
    message(FATAL_ERROR "${name}: no sources match ${arg_UNPARSED_ARGUMENTS}")
  endif()
  add_library(${name} STATIC ${sources})
  graft_warnings(${name})
  add_dependencies(${name} graft_layers)
endfunction()
