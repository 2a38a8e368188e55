"""DRA mode's pure pieces (docs/dra.md), shared by the scheduler's webhook, the DRA kubelet
plugin (:mod:`hami.agent.dra`), ``hami explain`` and the web UI: device and driver names
(:mod:`names`), pod -> ResourceClaimTemplate translation (:mod:`translate`), claims -> allocation
records and capacity audits (:mod:`records`), and the explanation of a DRA pod (:mod:`explain`).
No I/O: reading claims and slices from a cluster is :mod:`hami.draview`'s."""
