# flowfeed_add_library(NAME SOURCES...): one of flowfeed's libraries, set up as all of them are.
#
# Makes the static library flowfeed_NAME with the alias flowfeed::NAME (the name it is exported
# under), position-independent (plugins and the Python module link it into shared objects),
# with the project's warnings, and with the calling folder's include/ as its public headers
# (installed under include/). Sources are named one by one by the caller, relative to its
# folder: a new file is a decision a reviewer sees. Anything beyond this (dependencies, private
# include folders, a different output name) the caller adds to the target afterwards.
function(flowfeed_add_library name)
  add_library(flowfeed_${name} ${ARGN})
  add_library(flowfeed::${name} ALIAS flowfeed_${name})
  set_target_properties(flowfeed_${name} PROPERTIES EXPORT_NAME ${name}
                                                    POSITION_INDEPENDENT_CODE ON)
  target_include_directories(flowfeed_${name}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>)
  target_compile_options(flowfeed_${name} PRIVATE ${FLOWFEED_WARNINGS})
endfunction()
