"""`hami sim`: the real decision core over a cluster described in YAML, no cluster needed."""
