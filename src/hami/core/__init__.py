"""The pure decision core: frozen snapshots in, decisions out. No I/O, no clock, no environment."""
