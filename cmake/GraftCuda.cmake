# graft's CUDA backend (engine/cuda/): cuDNN graphs for the frozen trunk,
# cuBLAS and small kernels for the classifier.
#
#   GRAFT_CUDA=AUTO|ON|OFF   AUTO (default): built when nvcc, cuDNN >= 9 and
#                            cuBLAS are all found; ON: their absence is an error.
#   GRAFT_CUDA_ARCHITECTURES default "80-real;90": SASS for sm_80, SASS + PTX
#                            for sm_90 (the PTX runs on anything newer). An
#                            explicit CMAKE_CUDA_ARCHITECTURES wins. Never
#                            "native": the build machines have no GPU.
#   CUDNN_ROOT               where cuDNN lives, if not with the toolkit or in a
#                            pip nvidia-cudnn wheel (see FindCUDNN.cmake).
#
# When built, the backend is a module, libgraft_cuda.so beside the apps in
# bin/, that graft_backends loads at run time (engine/cuda_module.h,
# cuda_loader.c): the apps and graft's libraries link neither cuDNN, cuBLAS
# nor the CUDA runtime, and GRAFT_HAVE_CUDA (a PUBLIC compile definition of
# graft_backends) only tells graft_backends to look for the module. The module
# is compiled against the engine's headers and links none of graft's
# libraries (engine/cuda_module.h says how it gets what it needs). It links
# cudart statically and never libcuda: on a machine without a driver cudart
# reports cudaErrorInsufficientDriver and the backend says so.
#
# graft_cuda_attach(TARGET) builds the module, makes TARGET (graft_backends)
# depend on it, and defines graft_cuda_static: the same backend as a static
# library, for the tests that call its internals (test_cuda_ops,
# test_cudnn_deviceless). It does nothing when the backend is not built.

set(GRAFT_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
set_property(CACHE GRAFT_CUDA PROPERTY STRINGS AUTO ON OFF)
set(GRAFT_CUDA_ARCHITECTURES "80-real;90" CACHE STRING
    "CUDA architectures when CMAKE_CUDA_ARCHITECTURES is not given (never native)")
string(TOUPPER "${GRAFT_CUDA}" _graft_cuda)
set(GRAFT_HAVE_CUDA OFF)

function(_graft_cuda_missing what)
  if(_graft_cuda STREQUAL "ON")
    message(FATAL_ERROR "GRAFT_CUDA=ON but ${what}")
  endif()
  message(STATUS "CUDA backend: off (${what})")
endfunction()

if(_graft_cuda STREQUAL "OFF")
  message(STATUS "CUDA backend: off (GRAFT_CUDA=OFF)")
elseif(NOT _graft_cuda MATCHES "^(AUTO|ON)$")
  message(FATAL_ERROR "GRAFT_CUDA=${GRAFT_CUDA}: expected AUTO, ON or OFF")
else()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    _graft_cuda_missing("no CUDA compiler (nvcc) found")
  else()
    if(NOT CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES "${GRAFT_CUDA_ARCHITECTURES}")
    endif()
    if(CMAKE_CUDA_ARCHITECTURES MATCHES "native|all")
      message(FATAL_ERROR "CMAKE_CUDA_ARCHITECTURES=${CMAKE_CUDA_ARCHITECTURES}: "
              "name the architectures (e.g. 80-real;90); the build machines have no GPU")
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit)
    find_package(CUDNN 9)
    if(NOT CUDAToolkit_FOUND)
      _graft_cuda_missing("the CUDA toolkit was not found")
    elseif(NOT TARGET CUDA::cublas)
      _graft_cuda_missing("cuBLAS was not found")
    elseif(NOT CUDNN_FOUND)
      _graft_cuda_missing("cuDNN >= 9 was not found (set CUDNN_ROOT)")
    else()
      set(GRAFT_HAVE_CUDA ON)
      message(STATUS "CUDA backend: on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
              "cuDNN ${CUDNN_VERSION} in ${CUDNN_LIBRARY_DIR}, "
              "architectures ${CMAKE_CUDA_ARCHITECTURES})")
    endif()
  endif()
endif()

function(graft_cuda_attach target)
  if(NOT GRAFT_HAVE_CUDA)
    return()
  endif()
  set(dir ${PROJECT_SOURCE_DIR}/engine/cuda)
  file(GLOB host_sources CONFIGURE_DEPENDS ${dir}/*.c)
  list(REMOVE_ITEM host_sources ${dir}/module.c)
  file(GLOB cuda_sources CONFIGURE_DEPENDS ${dir}/*.cu)

  # The kernels: an object library of their own so that no C-only flag (the
  # sanitizers' -fsanitize, added for every language by GraftWarnings) reaches
  # nvcc. --fmad=false: no contraction of a*b+c into an FMA, so the
  # elementwise kernels round exactly as the CPU backend (built with
  # -ffp-contract=off) and PyTorch's CPU loops do.
  add_library(graft_cuda_kernels OBJECT ${cuda_sources})
  set_property(TARGET graft_cuda_kernels PROPERTY COMPILE_OPTIONS "")
  target_include_directories(graft_cuda_kernels PRIVATE ${PROJECT_SOURCE_DIR})
  set_target_properties(graft_cuda_kernels PROPERTIES
    CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON
    CUDA_RUNTIME_LIBRARY Static CUDA_VISIBILITY_PRESET hidden)
  target_compile_options(graft_cuda_kernels PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -Xcompiler=-Wall,-Wextra>)
  if(GRAFT_WERROR)
    target_compile_options(graft_cuda_kernels PRIVATE
      $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
  endif()
  add_dependencies(graft_cuda_kernels graft_layers)

  # The host code (gcc), compiled once for the module and the static library.
  # It sees the toolkit's and cuDNN's headers and graft's own, but never links
  # graft's libraries: the module gets graft's status and log functions from
  # the host (engine/cuda/module.c), the static library from graft_base. Hidden
  # visibility: the module exports its entry point alone.
  add_library(graft_cuda_host OBJECT ${host_sources})
  target_include_directories(graft_cuda_host PUBLIC ${PROJECT_SOURCE_DIR}
    $<TARGET_PROPERTY:CUDNN::cudnn,INTERFACE_INCLUDE_DIRECTORIES>
    ${CUDAToolkit_INCLUDE_DIRS})
  target_compile_definitions(graft_cuda_host PUBLIC _POSIX_C_SOURCE=200809L
    GRAFT_VERSION="${PROJECT_VERSION}" GRAFT_HAVE_CUDA)
  set_target_properties(graft_cuda_host PROPERTIES POSITION_INDEPENDENT_CODE ON
    C_VISIBILITY_PRESET hidden)
  graft_warnings(graft_cuda_host)
  add_dependencies(graft_cuda_host graft_layers)

  # The module. --no-undefined: everything it needs resolves when it is
  # built, never against the program that loads it (sanitizer builds link
  # their runtimes into it too).
  add_library(graft_cuda MODULE ${dir}/module.c $<TARGET_OBJECTS:graft_cuda_host>
    $<TARGET_OBJECTS:graft_cuda_kernels>)
  target_include_directories(graft_cuda PRIVATE
    $<TARGET_PROPERTY:graft_cuda_host,INTERFACE_INCLUDE_DIRECTORIES>)
  target_compile_definitions(graft_cuda PRIVATE
    $<TARGET_PROPERTY:graft_cuda_host,INTERFACE_COMPILE_DEFINITIONS>)
  set_target_properties(graft_cuda PROPERTIES PREFIX "lib" OUTPUT_NAME graft_cuda
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin C_VISIBILITY_PRESET hidden
    CUDA_RUNTIME_LIBRARY Static)
  graft_warnings(graft_cuda)
  target_link_libraries(graft_cuda PRIVATE CUDNN::cudnn CUDA::cublas CUDA::cudart_static)
  target_link_options(graft_cuda PRIVATE -Wl,--no-undefined)

  # graft_backends looks for the module (engine/cuda_loader.c) and is built
  # after it.
  target_compile_definitions(${target} PUBLIC GRAFT_HAVE_CUDA)
  target_link_libraries(${target} PUBLIC ${CMAKE_DL_LIBS})
  add_dependencies(${target} graft_cuda)

  # The same backend linked statically, for tests of its internals.
  add_library(graft_cuda_static STATIC $<TARGET_OBJECTS:graft_cuda_host>
    $<TARGET_OBJECTS:graft_cuda_kernels>)
  target_include_directories(graft_cuda_static PUBLIC
    $<TARGET_PROPERTY:graft_cuda_host,INTERFACE_INCLUDE_DIRECTORIES>)
  target_link_libraries(graft_cuda_static PUBLIC ${target} CUDNN::cudnn CUDA::cublas
    CUDA::cudart_static)
endfunction()
