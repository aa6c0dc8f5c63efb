# Third-party libraries, all from Debian 12's packages (see setup.sh), each
# behind a target of its own so that a layer links only what it calls:
# HDF5 (C) and libjpeg-turbo, libpng, cairo (finetune's curves.png) for io/;
# oneDNN 2.6 (convolutions and pooling), OpenBLAS (the classifier's GEMMs)
# and OpenMP (threads for our own loops) for the CPU backend.
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(JPEG REQUIRED)
find_package(PNG REQUIRED)
find_package(ZLIB REQUIRED)
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

add_library(graft_hdf5 INTERFACE)
target_include_directories(graft_hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS})
target_compile_definitions(graft_hdf5 INTERFACE ${HDF5_C_DEFINITIONS} H5_USE_110_API)
target_link_libraries(graft_hdf5 INTERFACE ${HDF5_C_LIBRARIES})

add_library(graft_openblas INTERFACE)
target_include_directories(graft_openblas INTERFACE ${OPENBLAS_INCLUDE_DIR})
target_link_libraries(graft_openblas INTERFACE ${OPENBLAS_LIBRARY})

add_library(graft_dnnl INTERFACE)
target_link_libraries(graft_dnnl INTERFACE DNNL::dnnl)
