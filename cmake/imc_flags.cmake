# Warning and sanitizer flags. Warnings apply to the project's own targets only.
set(IMC_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wvla -Wno-unused-parameter)

function(imc_project_warnings target)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:${IMC_WARNINGS}>)
    # .cu files under nvcc: the host compiler's warnings too; every nvcc warning an error.
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
    if(IMC_WERROR)
        target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-Werror>
            "$<$<COMPILE_LANGUAGE:CUDA>:SHELL:-Werror all-warnings>"
            $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Werror>)
    endif()
endfunction()

if(IMC_SANITIZE)
    add_compile_options(-fsanitize=${IMC_SANITIZE} -fno-omit-frame-pointer
                        -fno-sanitize-recover=all)
    add_link_options(-fsanitize=${IMC_SANITIZE})
endif()
