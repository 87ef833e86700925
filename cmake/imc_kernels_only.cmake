# The kernels-only build (-DIMC_KERNELS_ONLY=ON), for a GPU machine that has a compiler, CMake and
# CUDA but none of MPI, hwloc, libnuma or PCRE2 (scripts/gpu-check.sh): imc_core,
# imc_types, imc_kernels with only kernels/ref (plus kernels/cuda/*.cu under nvcc, as
# imc_module adds them), imc_cuda_emu, and the kernel tests of tests/cuda (ctest -L cuda): each
# runs the emulated kernels against kernels/ref and, with CUDA and a GPU, the device kernels.
# Not built here: the cpu kernels, the engine, MPI and the commands, hence no `imc` binary and no
# tests/cuda test that includes their headers (test_engine_emu, test_table: the engine through
# tests/cuda/backend_*.c and tests/e2e/engine_util.h) or calls the cpu kernels (test_gemm:
# bitwise against imc_cpu_matmul).
imc_module(imc_core core DEPS Threads::Threads m)
imc_module(imc_types types DEPS imc_core m)
imc_module(imc_kernels kernels DEPS imc_types SUBDIRS kernels/ref NO_TOP)

include(CTest)
include(cmake/imc_cuda.cmake)
if(BUILD_TESTING)
    file(GLOB srcs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cuda/test_*.c)
    foreach(src ${srcs})
        file(READ ${src} text)
        set(engine_headers "backend_[a-z_]*\\.h|\\.\\./e2e/|worker/|coordinator/|model/|src/")
        if(text MATCHES "#include \"(${engine_headers})" OR text MATCHES "imc_cpu_[a-z_]+\\(")
            continue()
        endif()
        get_filename_component(base ${src} NAME_WE)
        string(REGEX REPLACE "^test_" "" name ${base})
        set(exe test_cuda_${name})
        add_executable(${exe} ${src})
        file(GLOB kcu CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cuda/kern_${name}.cu)
        imc_cuemu_sources(kgen ${kcu})
        target_sources(${exe} PRIVATE ${kgen})
        target_link_libraries(${exe} PRIVATE imc_cuda_emu imc_kernels)
        imc_cuemu_target(${exe})
        target_compile_options(${exe} PRIVATE -UNDEBUG)
        imc_project_warnings(${exe})
        add_test(NAME cuda.${name} COMMAND ${exe})
        set_tests_properties(cuda.${name} PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 600)
    endforeach()
endif()

message(STATUS "imc ${PROJECT_VERSION} kernels only (tests/cuda kernel tests); CUDA: "
               "${IMC_HAVE_CUDA} ${CUDAToolkit_VERSION}")
