"""Device discovery: the port (`port`: `DeviceSource`, `open_backend`), its backends (`nvml`,
`fake`) and the device health table ListAndWatch follows (`health`). MIG: `hami.agent.mig`."""
