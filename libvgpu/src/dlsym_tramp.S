/*
 * dlsym_tramp.S - the exported `dlsym`.
 *
 * glibc's dlsym finds the caller for RTLD_NEXT from its return address. A C
 * wrapper would make libvgpu the caller and change what "next" means, so for
 * RTLD_NEXT this entry jumps into the real dlsym with the caller's return
 * address intact. Every other handle goes to vgpu__dlsym_impl (dispatch.c).
 */
#if defined(__x86_64__)
    .text
    .globl dlsym
    .type dlsym, @function
dlsym:
    .cfi_startproc
    cmpq $-1, %rdi
    jne vgpu__dlsym_impl
    pushq %rdi
    .cfi_adjust_cfa_offset 8
    pushq %rsi
    .cfi_adjust_cfa_offset 8
    subq $8, %rsp
    .cfi_adjust_cfa_offset 8
    call vgpu__real_dlsym_get
    addq $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq %rsi
    .cfi_adjust_cfa_offset -8
    popq %rdi
    .cfi_adjust_cfa_offset -8
    testq %rax, %rax
    je 1f
    jmp *%rax
1:  ret
    .cfi_endproc
    .size dlsym, .-dlsym
#elif defined(__aarch64__)
    .text
    .globl dlsym
    .type dlsym, %function
dlsym:
    cmn x0, #1
    b.ne vgpu__dlsym_impl
    stp x29, x30, [sp, #-32]!
    mov x29, sp
    stp x0, x1, [sp, #16]
    bl vgpu__real_dlsym_get
    mov x16, x0
    ldp x0, x1, [sp, #16]
    ldp x29, x30, [sp], #32
    cbz x16, 1f
    br x16
1:  mov x0, #0
    ret
    .size dlsym, .-dlsym
#else
#error "libvgpu: dlsym trampoline not written for this architecture"
#endif
    .section .note.GNU-stack,"",%progbits
