# GRAFT_FUZZ=ON: the libFuzzer harnesses of test/fuzz, built with clang and
# -fsanitize=fuzzer,address,undefined. Every graft source of the build is
# instrumented for coverage (fuzzer-no-link) and the sanitizers, so the
# harnesses see the readers' own branches. Without clang or its libFuzzer
# runtime the fuzz_* tests are still there, skipped, saying why
# (GRAFT_FUZZ_WHY).
set(GRAFT_FUZZ_OK FALSE)
if(GRAFT_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(GRAFT_FUZZ_WHY "libFuzzer needs clang, and the C compiler of this build is ${CMAKE_C_COMPILER_ID} (configure a build with CC=clang and -DGRAFT_FUZZ=ON)")
  else()
    include(CheckCSourceCompiles)
    set(CMAKE_REQUIRED_FLAGS -fsanitize=fuzzer,address,undefined)
    set(CMAKE_REQUIRED_LINK_OPTIONS -fsanitize=fuzzer,address,undefined)
    check_c_source_compiles("#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n ? 0 : 0; }"
      GRAFT_HAVE_LIBFUZZER)
    unset(CMAKE_REQUIRED_FLAGS)
    unset(CMAKE_REQUIRED_LINK_OPTIONS)
    if(GRAFT_HAVE_LIBFUZZER)
      set(GRAFT_FUZZ_OK TRUE)
    else()
      set(GRAFT_FUZZ_WHY "clang cannot link -fsanitize=fuzzer: its libFuzzer runtime is missing (Debian 12: apt-get install libclang-rt-14-dev)")
    endif()
  endif()
  if(GRAFT_FUZZ_OK)
    message(STATUS "libFuzzer harnesses: built (test/fuzz)")
    add_compile_options($<$<COMPILE_LANGUAGE:C>:-fsanitize=fuzzer-no-link,address,undefined>
                        $<$<COMPILE_LANGUAGE:C>:-fno-sanitize-recover=undefined>
                        $<$<COMPILE_LANGUAGE:C>:-fno-omit-frame-pointer>)
    add_link_options(-fsanitize=address,undefined)
  else()
    message(WARNING "GRAFT_FUZZ: ${GRAFT_FUZZ_WHY}; the fuzz_* tests will be skipped")
  endif()
endif()
