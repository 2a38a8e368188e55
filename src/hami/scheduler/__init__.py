"""The scheduler service: kube-scheduler extender (/filter, /bind) and mutating webhook."""
