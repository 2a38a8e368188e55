"""``hami device-plugin --simulate``: many kwok nodes in one process — NVIDIA nodes from fake
inventories (`simulator`), any vendor's from Node manifests (`vendornodes`)."""
