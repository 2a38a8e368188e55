"""`hami demo`: the whole stack on a local control plane, with example pods placed on simulated
GPU nodes (`make demo`). :mod:`hami.demo.stack` holds the pieces the e2e tests share."""
