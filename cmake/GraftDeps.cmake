# Third-party libraries, all from Debian 12's packages (see setup.sh):
# HDF5 (C), libjpeg-turbo, libpng, oneDNN 2.6 (convolutions and pooling),
# OpenBLAS (the classifier's GEMMs), OpenMP (threads for our own loops),
# cairo (finetune's curves.png).
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(JPEG REQUIRED)
find_package(PNG REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS C)
find_package(Threads REQUIRED)
find_package(dnnl CONFIG REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(CAIRO REQUIRED IMPORTED_TARGET cairo)

find_path(OPENBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread
          PATHS /usr/include/x86_64-linux-gnu /usr/include)
find_library(OPENBLAS_LIBRARY NAMES openblas)
if(NOT OPENBLAS_INCLUDE_DIR OR NOT OPENBLAS_LIBRARY)
  message(FATAL_ERROR "OpenBLAS not found: install libopenblas-dev (setup.sh does)")
endif()

add_library(graft_deps INTERFACE)
target_include_directories(graft_deps INTERFACE ${HDF5_C_INCLUDE_DIRS} ${OPENBLAS_INCLUDE_DIR})
target_compile_definitions(graft_deps INTERFACE ${HDF5_C_DEFINITIONS} H5_USE_110_API)
target_link_libraries(graft_deps INTERFACE ${HDF5_C_LIBRARIES} JPEG::JPEG PNG::PNG
  DNNL::dnnl PkgConfig::CAIRO ${OPENBLAS_LIBRARY} OpenMP::OpenMP_C Threads::Threads m)
