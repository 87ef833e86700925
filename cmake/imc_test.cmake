# Tests (STYLE b.7): tests/<kind>/test_<name>.c -> executable, ctest "<kind>.<name>", label kind;
# tests/<kind>/test_<name>.sh -> run with bash. Exit 77 = skipped. tests/<kind>/tool_<name>.c ->
# executable tool_<name> in the build folder, which tests run (stand-ins), not a test.
# Kind cuda also links imc_cuda_emu (cmake/imc_cuda.cmake), tests/cuda/kern_<name>.cu and
# tcuda_support: tests/cuda/backend_*.c, C helpers the cuda tests share (the emulated op table);
# so do tests of other kinds named test_<name>_emu (tests/mpi/test_engine_ep_emu: MPI ranks on it).
set(IMC_SHARED_DIR "${PROJECT_SOURCE_DIR}/../shared" CACHE PATH "the steering repo's shared/")

function(imc_add_tests)
    set(env "IMC_BIN=$<TARGET_FILE:imc>" "IMC_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
            "IMC_SHARED_DIR=${IMC_SHARED_DIR}" "IMC_BUILD_DIR=${PROJECT_BINARY_DIR}"
            "MPIEXEC=${MPIEXEC_EXECUTABLE}" "OMPI_ALLOW_RUN_AS_ROOT=1"
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1" "OMPI_MCA_rmaps_base_oversubscribe=1")
    file(GLOB tcuda_srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cuda/backend_*.c)
    add_library(tcuda_support STATIC ${tcuda_srcs})
    target_link_libraries(tcuda_support PUBLIC imc_cuda_emu imc_cli)
    imc_project_warnings(tcuda_support)
    foreach(kind unit kernels gguf e2e mpi slurm cuda)
        file(GLOB csrcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/${kind}/test_*.c)
        foreach(src ${csrcs})
            get_filename_component(base ${src} NAME_WE)
            string(REGEX REPLACE "^test_" "" name ${base})
            set(exe test_${kind}_${name})
            add_executable(${exe} ${src})
            target_link_libraries(${exe} PRIVATE imc_cli)
            if(kind STREQUAL "cuda" OR name MATCHES "_emu$") # tests/mpi/test_*_emu too
                # the emulated kernels, and tests/cuda/kern_<name>.cu: kernels of this test only
                file(GLOB kcu CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cuda/kern_${name}.cu)
                imc_cuemu_sources(kgen ${kcu})
                target_sources(${exe} PRIVATE ${kgen})
                target_link_libraries(${exe} PRIVATE tcuda_support imc_cuda_emu)
                imc_cuemu_target(${exe})
            endif()
            target_compile_options(${exe} PRIVATE -UNDEBUG)
            imc_project_warnings(${exe})
            add_test(NAME ${kind}.${name} COMMAND ${exe})
            set_tests_properties(${kind}.${name} PROPERTIES LABELS ${kind}
                SKIP_RETURN_CODE 77 ENVIRONMENT "${env}" TIMEOUT 600)
        endforeach()
        # tests/<kind>/tool_<name>.c: a program the tests run (a stand-in), not a test itself
        file(GLOB tools CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/${kind}/tool_*.c)
        foreach(src ${tools})
            get_filename_component(base ${src} NAME_WE)
            add_executable(${base} ${src})
            target_link_libraries(${base} PRIVATE imc_cli)
            imc_project_warnings(${base})
        endforeach()
        file(GLOB shsrcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/${kind}/test_*.sh)
        foreach(src ${shsrcs})
            get_filename_component(base ${src} NAME_WE)
            string(REGEX REPLACE "^test_" "" name ${base})
            add_test(NAME ${kind}.${name} COMMAND bash ${src})
            set_tests_properties(${kind}.${name} PROPERTIES LABELS ${kind}
                SKIP_RETURN_CODE 77 ENVIRONMENT "${env}" TIMEOUT 900)
        endforeach()
    endforeach()
endfunction()
