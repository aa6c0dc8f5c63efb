# FindCUDNN: cuDNN's headers and library, and its version from cudnn_version.h.
#
# Looked for, in order: CUDNN_ROOT (CMake or environment variable), the CUDA
# toolkit's own directories, then a pip-installed nvidia-cudnn-cuXX wheel
# (site-packages/nvidia/cudnn/{include,lib}) of any python3 on the PATH. The
# wheel ships only versioned libraries (libcudnn.so.9, no libcudnn.so), so the
# versioned names are searched too.
#
# Result: CUDNN_FOUND, CUDNN_VERSION (e.g. 9.19.0), CUDNN_VERSION_MAJOR,
# CUDNN_INCLUDE_DIR, CUDNN_LIBRARY, CUDNN_LIBRARY_DIR and the imported target
# CUDNN::cudnn (the libcudnn.so.9 shim, which loads its sub-libraries from its
# own directory at run time).

set(_cudnn_hints)
foreach(_root "${CUDNN_ROOT}" "$ENV{CUDNN_ROOT}")
  if(_root)
    list(APPEND _cudnn_hints "${_root}")
  endif()
endforeach()
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _cudnn_hints "${CUDAToolkit_LIBRARY_ROOT}")
endif()
if(CUDAToolkit_INCLUDE_DIRS)
  foreach(_inc ${CUDAToolkit_INCLUDE_DIRS})
    get_filename_component(_up "${_inc}" DIRECTORY)
    list(APPEND _cudnn_hints "${_up}")
  endforeach()
endif()
list(APPEND _cudnn_hints /usr/local/cuda)

# A pip wheel: ask each python3 where the nvidia.cudnn package lives.
if(NOT CUDNN_INCLUDE_DIR)
  find_program(_cudnn_python NAMES python3 NO_CACHE)
  if(_cudnn_python)
    execute_process(
      COMMAND ${_cudnn_python} -c
              "import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__ or list(nvidia.cudnn.__path__)[0]))"
      OUTPUT_VARIABLE _wheel OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc ERROR_QUIET)
    if(_rc EQUAL 0 AND _wheel)
      list(APPEND _cudnn_hints "${_wheel}")
    endif()
  endif()
endif()

find_path(CUDNN_INCLUDE_DIR cudnn_version.h
  HINTS ${_cudnn_hints} PATH_SUFFIXES include include/x86_64-linux-gnu)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
  HINTS ${_cudnn_hints} PATH_SUFFIXES lib64 lib lib/x86_64-linux-gnu)

set(CUDNN_VERSION "")
if(CUDNN_INCLUDE_DIR AND EXISTS "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  file(STRINGS "${CUDNN_INCLUDE_DIR}/cudnn_version.h" _lines
       REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) +[0-9]+")
  foreach(_part MAJOR MINOR PATCHLEVEL)
    string(REGEX MATCH "CUDNN_${_part} +([0-9]+)" _m "${_lines}")
    set(_cudnn_${_part} "${CMAKE_MATCH_1}")
  endforeach()
  if(NOT _cudnn_MAJOR STREQUAL "")
    set(CUDNN_VERSION_MAJOR ${_cudnn_MAJOR})
    set(CUDNN_VERSION "${_cudnn_MAJOR}.${_cudnn_MINOR}.${_cudnn_PATCHLEVEL}")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR CUDNN_VERSION
  VERSION_VAR CUDNN_VERSION)

if(CUDNN_FOUND)
  get_filename_component(CUDNN_LIBRARY_DIR "${CUDNN_LIBRARY}" DIRECTORY)
  if(NOT TARGET CUDNN::cudnn)
    add_library(CUDNN::cudnn SHARED IMPORTED)
    set_target_properties(CUDNN::cudnn PROPERTIES
      IMPORTED_LOCATION "${CUDNN_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
  endif()
endif()
mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
