"""Dynamic MIG on the node (wire-format.md §2.8, §5.7): the backend port (`port`), a faithful
fake (`fake`), the real NVML backend (`nvml`), profile tables (`catalog`) and the manager that
realises, adopts and reclaims the scheduler's reservations (`manager`)."""
