# libFuzzer targets (-DIMC_FUZZ=ON; clang only): tests/fuzz/fuzz_<name>.c -> executable
# fuzz_<name>, linked with core/ and model/ compiled again under -fsanitize=fuzzer-no-link,
# address and undefined (coverage of the code under test). ctest "fuzz.<name>" runs it once over
# its seed corpus tests/fuzz/corpus/<name>/ (a regression check; label fuzz). Long runs:
#   build/fuzz_gguf -max_total_time=300 -dict=tests/fuzz/gguf.dict NEW_DIR tests/fuzz/corpus/gguf
if(IMC_FUZZ)
    if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
        message(FATAL_ERROR "IMC_FUZZ=ON needs clang: configure with CC=clang")
    endif()
    set(imc_fuzz_san -fsanitize=address,undefined -fno-sanitize-recover=all
                     -fno-omit-frame-pointer)
    file(GLOB imc_fuzz_lib_srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/core/*.c
                                                  ${PROJECT_SOURCE_DIR}/model/*.c)
    add_library(imc_fuzz_model STATIC ${imc_fuzz_lib_srcs})
    target_include_directories(imc_fuzz_model PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
    target_compile_definitions(imc_fuzz_model PUBLIC IMC_HAVE_CUDA=0 IMC_HAVE_NCCL=0)
    target_compile_options(imc_fuzz_model PRIVATE -fsanitize=fuzzer-no-link ${imc_fuzz_san})
    target_link_libraries(imc_fuzz_model PUBLIC Threads::Threads m PkgConfig::PCRE2)
    # (no -Werror here: the project is warning-clean under gcc, its CI compiler)

    file(GLOB imc_fuzz_srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
    foreach(src ${imc_fuzz_srcs})
        get_filename_component(exe ${src} NAME_WE)
        string(REGEX REPLACE "^fuzz_" "" name ${exe})
        add_executable(${exe} ${src})
        target_link_libraries(${exe} PRIVATE imc_fuzz_model)
        target_compile_options(${exe} PRIVATE -fsanitize=fuzzer ${imc_fuzz_san})
        target_link_options(${exe} PRIVATE -fsanitize=fuzzer ${imc_fuzz_san})
        imc_project_warnings(${exe})
        if(BUILD_TESTING AND EXISTS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
            add_test(NAME fuzz.${name}
                     COMMAND ${exe} -runs=0 ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${name})
            set_tests_properties(fuzz.${name} PROPERTIES LABELS fuzz TIMEOUT 300)
        endif()
    endforeach()
endif()
