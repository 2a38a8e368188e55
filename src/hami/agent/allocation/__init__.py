"""Allocation: the Allocate flow over the pod's annotations (`allocator`), the pure answer for one
container entry (`response`: env, mounts, device nodes, CDI names), and the CDI spec (`cdi`)."""
