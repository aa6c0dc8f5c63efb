# Warning flags for graft's own targets; -Werror when GRAFT_WERROR (CI).
# Float expressions are never contracted into FMAs behind our back: the
# preprocessing must match PyTorch's float32 arithmetic to the bit.
function(graft_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -Wshadow -Wstrict-prototypes -Wvla -ffp-contract=off>)
  if(GRAFT_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-Werror>)
  endif()
endfunction()

if(GRAFT_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
