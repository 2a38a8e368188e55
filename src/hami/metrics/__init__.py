"""The metrics every exporter shares: the exposition plumbing (`specs`: `Spec`, `Families`,
build info), the scheduler's metric specs (`specs`) and the monitor's (`monitor`). They are a
wire format — dashboards and the web UI's Prometheus queries read these names — so they live
below the services that export them and the UI that reads them."""
