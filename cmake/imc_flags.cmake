# Warning and sanitizer flags. Warnings apply to the project's own targets only.
set(IMC_WARNINGS -Wall -Wextra -Wshadow -Wformat=2 -Wvla -Wno-unused-parameter)

function(imc_project_warnings target)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:${IMC_WARNINGS}>)
    if(IMC_WERROR)
        target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C>:-Werror>)
    endif()
endfunction()

if(IMC_SANITIZE)
    add_compile_options(-fsanitize=${IMC_SANITIZE} -fno-omit-frame-pointer
                        -fno-sanitize-recover=all)
    add_link_options(-fsanitize=${IMC_SANITIZE})
endif()
