# Helpers shared by every target: one library per area, one precompiled header, ccache.

if(TEACHFORMER_USE_CCACHE)
  find_program(CCACHE_PROGRAM ccache)
  if(CCACHE_PROGRAM)
    # PCH-aware ccache settings; the base dir makes hits independent of the checkout path.
    set(_tf_ccache ${CMAKE_COMMAND} -E env
        CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
        CCACHE_BASEDIR=${CMAKE_SOURCE_DIR} ${CCACHE_PROGRAM})
    set(CMAKE_CXX_COMPILER_LAUNCHER ${_tf_ccache})
    set(CMAKE_C_COMPILER_LAUNCHER ${_tf_ccache})
  endif()
endif()

# One object library owns the precompiled header; every other target reuses it.
function(tf_setup_pch)
  add_library(tf_pch OBJECT ${CMAKE_SOURCE_DIR}/cmake/pch_stub.cpp)
  target_link_libraries(tf_pch PUBLIC ${TORCH_LIBRARIES} nlohmann_json::nlohmann_json spdlog::spdlog)
  target_include_directories(tf_pch PUBLIC ${CMAKE_SOURCE_DIR}/include ${CMAKE_BINARY_DIR}/generated)
  if(TEACHFORMER_USE_PCH)
    target_precompile_headers(tf_pch PRIVATE ${CMAKE_SOURCE_DIR}/cmake/tf_pch.hpp)
  endif()
endfunction()

function(tf_use_pch target)
  if(TEACHFORMER_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM tf_pch)
  endif()
endfunction()

# tf_add_library(<area> [DEPS <area>...]): target tf_<area> from src/<area>/*.cpp and src/<area>/detail/*.cpp.
function(tf_add_library area)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB _srcs CONFIGURE_DEPENDS
       ${CMAKE_SOURCE_DIR}/src/${area}/*.cpp ${CMAKE_SOURCE_DIR}/src/${area}/detail/*.cpp)
  if(NOT _srcs)
    set(_srcs ${CMAKE_SOURCE_DIR}/cmake/pch_stub.cpp)
  endif()
  add_library(tf_${area} STATIC ${_srcs})
  add_library(teachformer::${area} ALIAS tf_${area})
  target_include_directories(tf_${area} PUBLIC ${CMAKE_SOURCE_DIR}/include ${CMAKE_BINARY_DIR}/generated PRIVATE ${CMAKE_SOURCE_DIR}/src)
  foreach(dep ${ARG_DEPS})
    target_link_libraries(tf_${area} PUBLIC tf_${dep})
  endforeach()
  tf_use_pch(tf_${area})
endfunction()

# tf_add_test_suite(<name> SOURCES ... LIBS ... LABELS ...)
function(tf_add_test_suite name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE tf_test_support ${ARG_LIBS} GTest::gtest GTest::gmock)
  tf_use_pch(${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
endfunction()
