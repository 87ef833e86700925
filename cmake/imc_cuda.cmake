# The CUDA kernels' two builds (issue 13, STYLE b.6):
#  - with nvcc (IMC_HAVE_CUDA): kernels/cuda/<op>.cu go into imc_kernels (cmake/imc_module.cmake)
#    for CMAKE_CUDA_ARCHITECTURES; imc_project_warnings (cmake/imc_flags.cmake) makes nvcc's and
#    the host compiler's warnings errors under IMC_WERROR.
#  - imc_cuda_emu (every build with tests, no nvcc needed): the same .cu files compiled by the
#    C++ compiler as C++17 with IMC_CUDA_EMU=1 against the emulator (kernels/cuda/emu), whose
#    launchers are named imc_cuemu_<op>. Each .cu is compiled through a generated one-line .cc
#    that includes it, since a source file has one language per directory in CMake.
set(IMC_CXX_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wvla -Wno-unused-parameter)

# imc_cuemu_sources(OUT_VAR cu_files...): the generated .cc wrappers of .cu files.
function(imc_cuemu_sources out)
    set(gen "")
    foreach(cu ${ARGN})
        file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${cu})
        string(REPLACE "/" "_" flat ${rel})
        set(cc ${PROJECT_BINARY_DIR}/cuemu_gen/${flat}.cc)
        file(CONFIGURE OUTPUT ${cc}
             CONTENT "// generated: ${rel} for the CUDA emulator\n#include \"${rel}\"\n")
        list(APPEND gen ${cc})
    endforeach()
    set(${out} ${gen} PARENT_SCOPE)
endfunction()

# imc_cuemu_target(target): C++17, IMC_CUDA_EMU, the project's warnings (errors under IMC_WERROR).
function(imc_cuemu_target target)
    set_target_properties(${target} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON
                                               CXX_EXTENSIONS OFF)
    target_compile_definitions(${target} PUBLIC IMC_CUDA_EMU=1)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${IMC_CXX_WARNINGS}>)
    if(IMC_WERROR)
        target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
    endif()
endfunction()

if(BUILD_TESTING)
    enable_language(CXX)
    file(GLOB IMC_CUEMU_CU CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/cuda/*.cu)
    file(GLOB IMC_CUEMU_RT CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/cuda/emu/*.cc)
    imc_cuemu_sources(IMC_CUEMU_GEN ${IMC_CUEMU_CU})
    add_library(imc_cuda_emu STATIC ${IMC_CUEMU_GEN} ${IMC_CUEMU_RT})
    target_include_directories(imc_cuda_emu PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
    target_link_libraries(imc_cuda_emu PUBLIC imc_kernels) # rope.cu: imc_rope_corr_dims
    imc_cuemu_target(imc_cuda_emu)
endif()
