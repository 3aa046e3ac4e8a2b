# inkstone_layer(NAME DEPENDENCY): the library of one layer (train/, infer/) from the *.cpp of the
# calling folder, linked on top of DEPENDENCY. A layer with no sources yet is an INTERFACE target, so
# the layers above can link it from the first day.
function(inkstone_layer name dependency)
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  if(sources)
    add_library(${name} STATIC ${sources})
    target_link_libraries(${name} PUBLIC ${dependency} PRIVATE inkstone_warnings)
  else()
    add_library(${name} INTERFACE)
    target_link_libraries(${name} INTERFACE ${dependency})
  endif()
endfunction()
