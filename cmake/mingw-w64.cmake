# Cross-compiling for 64-bit Windows with Debian's mingw-w64 (gcc-mingw-w64-x86-64).
# PM_WIN_DEPS: the prefix scripts/windows-deps.sh builds the dependencies into (static
# libraries and pkg-config files); found there and nowhere else on the build machine.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(PM_MINGW_HOST x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${PM_MINGW_HOST}-gcc)
set(CMAKE_RC_COMPILER ${PM_MINGW_HOST}-windres)
set(CMAKE_AR ${PM_MINGW_HOST}-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${PM_MINGW_HOST}-ranlib CACHE FILEPATH "")

set(PM_WIN_DEPS "" CACHE PATH "Prefix of the dependencies cross-built for Windows")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PM_WIN_DEPS)
set(CMAKE_FIND_ROOT_PATH /usr/${PM_MINGW_HOST})
if(PM_WIN_DEPS)
  list(APPEND CMAKE_FIND_ROOT_PATH ${PM_WIN_DEPS})
  set(ENV{PKG_CONFIG_LIBDIR} ${PM_WIN_DEPS}/lib/pkgconfig)
  set(ENV{PKG_CONFIG_PATH} "")
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The compiler's runtime (libgcc, winpthread when the posix flavour is the default) is linked
# in, so programs and DLLs run under plain wine, or on Windows, with no runtime DLL beside them.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")

# CTest runs the test programs under wine, in a wine prefix of the build tree's own.
if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
  set(CMAKE_CROSSCOMPILING_EMULATOR sh ${CMAKE_CURRENT_LIST_DIR}/../scripts/wine-run.sh
      ${CMAKE_BINARY_DIR}/wine)
endif()
