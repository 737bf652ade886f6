# find_package(pipemsg): pipemsg::pipemsg, the shared library, and pipemsg::pipemsg_static.
# The public headers include uv.h and jansson.h, so both targets bring libuv and jansson; the
# static library also links libxml2 and SQLite, which the shared one keeps to itself. The
# dependencies are found through pkg-config, as the build found them.
include(CMakeFindDependencyMacro)
find_dependency(PkgConfig)
pkg_check_modules(pipemsg_libuv QUIET IMPORTED_TARGET libuv)
pkg_check_modules(pipemsg_jansson QUIET IMPORTED_TARGET jansson)
if(NOT pipemsg_libuv_FOUND OR NOT pipemsg_jansson_FOUND)
  set(pipemsg_FOUND FALSE)
  set(pipemsg_NOT_FOUND_MESSAGE "pipemsg needs libuv and jansson (pkg-config: libuv, jansson)")
  return()
endif()
include("${CMAKE_CURRENT_LIST_DIR}/pipemsgTargets.cmake")

# Without libxml2's or SQLite's pkg-config file an app can still use the shared library:
# pipemsg::pipemsg_static is then not defined, and the component "static" is not found.
pkg_check_modules(pipemsg_libxml2 QUIET IMPORTED_TARGET libxml-2.0)
pkg_check_modules(pipemsg_sqlite3 QUIET IMPORTED_TARGET sqlite3)
if(pipemsg_libxml2_FOUND AND pipemsg_sqlite3_FOUND)
  include("${CMAKE_CURRENT_LIST_DIR}/pipemsgStaticTargets.cmake")
  set(pipemsg_static_FOUND TRUE)
endif()
set(pipemsg_shared_FOUND TRUE)
foreach(component IN LISTS pipemsg_FIND_COMPONENTS)
  if(NOT pipemsg_${component}_FOUND AND pipemsg_FIND_REQUIRED_${component})
    set(pipemsg_FOUND FALSE)
    set(pipemsg_NOT_FOUND_MESSAGE "pipemsg: component ${component} not found (static needs the pkg-config files libxml-2.0 and sqlite3)")
  endif()
endforeach()
