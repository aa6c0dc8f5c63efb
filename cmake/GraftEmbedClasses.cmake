# Embeds a class-name list (one name per line, '#' lines are comments) as a C
# array, so that the library never has to find a data file at run time.
#   cmake -DINPUT=names.txt -DOUTPUT=names.c -DSYMBOL=graft__imagenet_classes
#         -DCOUNT=1000 -P GraftEmbedClasses.cmake
# Names with characters that would need escaping in C or that CMake lists
# cannot hold (" \ ; [ ]) are refused rather than mangled.
file(STRINGS "${INPUT}" lines ENCODING UTF-8)
set(body "")
set(n 0)
foreach(line IN LISTS lines)
  if(line MATCHES "^#" OR line STREQUAL "")
    continue()
  endif()
  if(line MATCHES "[\"\\\\]")
    message(FATAL_ERROR "${INPUT}: \"${line}\" has a character that would need escaping")
  endif()
  string(APPEND body "    \"${line}\",\n")
  math(EXPR n "${n} + 1")
endforeach()
if(NOT n EQUAL COUNT)
  message(FATAL_ERROR "${INPUT}: ${n} names, expected ${COUNT}")
endif()
file(WRITE "${OUTPUT}.tmp"
  "/* Generated from ${INPUT} by cmake/GraftEmbedClasses.cmake: do not edit. */\n"
  "extern const char *const ${SYMBOL}[${COUNT}];\n"
  "const char *const ${SYMBOL}[${COUNT}] = {\n${body}};\n")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
