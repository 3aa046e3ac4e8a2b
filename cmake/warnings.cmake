# One warning policy for every inkstone target; CI sets INKSTONE_WERROR=ON.
add_library(inkstone_warnings INTERFACE)
target_compile_options(inkstone_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wshadow=local -Wnon-virtual-dtor>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${INKSTONE_WERROR}>>:-Werror>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${INKSTONE_WERROR}>>:-Werror=all-warnings>)
