# OpenCV core and imgproc without OpenCV's CMake package, for a JPEG-only build
# (FLOWFEED_OPENCV_IMGCODECS=OFF, docs/offline.md). Included by the top-level CMakeLists.txt and,
# installed beside it, by flowfeedConfig.cmake: the installed static libraries link the two
# modules by their target names, so a program that links them finds the same two files again.
#
# Not find_package(OpenCV COMPONENTS core imgproc): OpenCVModules.cmake checks that the library
# file of every module OpenCV was built with exists, whatever components are asked for, so it
# fails where only core and imgproc are installed (and their -dev packages do not carry it).
#
# Sets FLOWFEED_OPENCV_CORE_FOUND; when TRUE, the imported targets opencv_core and opencv_imgproc
# (OpenCV's own names; made only where no such target exists yet), OpenCV_LIBS and
# OpenCV_INCLUDE_DIRS; when FALSE, FLOWFEED_OPENCV_CORE_MISSING names what was not found.
find_path(FLOWFEED_OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4)
find_library(FLOWFEED_OPENCV_CORE_LIBRARY opencv_core)
find_library(FLOWFEED_OPENCV_IMGPROC_LIBRARY opencv_imgproc)
set(FLOWFEED_OPENCV_CORE_MISSING "")
foreach(var FLOWFEED_OPENCV_INCLUDE_DIR FLOWFEED_OPENCV_CORE_LIBRARY FLOWFEED_OPENCV_IMGPROC_LIBRARY)
  if(NOT ${var})
    list(APPEND FLOWFEED_OPENCV_CORE_MISSING ${var})
  endif()
endforeach()
if(FLOWFEED_OPENCV_CORE_MISSING)
  set(FLOWFEED_OPENCV_CORE_FOUND FALSE)
  return()
endif()
set(FLOWFEED_OPENCV_CORE_FOUND TRUE)
if(NOT TARGET opencv_core)
  add_library(opencv_core SHARED IMPORTED)
  set_target_properties(opencv_core PROPERTIES IMPORTED_LOCATION ${FLOWFEED_OPENCV_CORE_LIBRARY}
                        INTERFACE_INCLUDE_DIRECTORIES ${FLOWFEED_OPENCV_INCLUDE_DIR})
endif()
if(NOT TARGET opencv_imgproc)
  add_library(opencv_imgproc SHARED IMPORTED)
  set_target_properties(opencv_imgproc PROPERTIES
                        IMPORTED_LOCATION ${FLOWFEED_OPENCV_IMGPROC_LIBRARY}
                        INTERFACE_LINK_LIBRARIES opencv_core)
endif()
set(OpenCV_LIBS opencv_core opencv_imgproc)
set(OpenCV_INCLUDE_DIRS ${FLOWFEED_OPENCV_INCLUDE_DIR})
