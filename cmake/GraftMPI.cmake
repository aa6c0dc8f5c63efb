# The ranks of a job (comm/): MPI when the build has it, else a single process.
#
#   GRAFT_MPI=AUTO|ON|OFF   AUTO (default): MPI when CMake's FindMPI finds a C
#                           MPI (Debian: libopenmpi-dev, which setup.sh
#                           installs); ON: its absence is an error; OFF: never.
#
# Either way the library graft_comm has the same header (comm/comm.h): with
# MPI it is comm/mpi.c, the only file of graft that includes <mpi.h>
# (cmake/check_layers.sh checks); without, comm/single.c, a job of one
# process. The programs are the same binaries in both: run by mpirun (or
# another launcher) they join its job, run plainly they never call MPI.
#
# Sets GRAFT_HAVE_MPI, and MPIEXEC_EXECUTABLE (FindMPI's) for the tests.

set(GRAFT_MPI AUTO CACHE STRING "Share the work of classify and finetune over MPI ranks: AUTO, ON or OFF")
set_property(CACHE GRAFT_MPI PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${GRAFT_MPI}" _graft_mpi)
set(GRAFT_HAVE_MPI OFF)

if(NOT _graft_mpi STREQUAL "OFF")
  find_package(MPI COMPONENTS C QUIET)
  if(MPI_C_FOUND)
    set(GRAFT_HAVE_MPI ON)
    message(STATUS "MPI: MPI ${MPI_C_VERSION} for C (launcher ${MPIEXEC_EXECUTABLE})")
  elseif(_graft_mpi STREQUAL "ON")
    message(FATAL_ERROR "GRAFT_MPI=ON but no MPI for C was found (install libopenmpi-dev "
                        "and openmpi-bin; setup.sh does)")
  else()
    message(STATUS "MPI: off (no MPI for C found); classify and finetune run as one process")
  endif()
else()
  message(STATUS "MPI: off (GRAFT_MPI=OFF)")
endif()

# graft_comm_library(NAME SOURCE_DIR): the library, MPI or single-process,
# with what is written over either (batches.c).
function(graft_comm_library name dir)
  if(GRAFT_HAVE_MPI)
    graft_library(${name} ${dir}/mpi.c ${dir}/batches.c)
    target_link_libraries(${name} PRIVATE MPI::MPI_C)
  else()
    graft_library(${name} ${dir}/single.c ${dir}/batches.c)
  endif()
endfunction()
