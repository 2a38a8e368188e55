"""Check 3 helper: a saturating fp16 matmul loop; prints iterations per second.

argv: seconds [start_at_epoch]. Waits until start_at so two processes overlap.
"""

import sys
import time

import torch

secs = float(sys.argv[1])
start_at = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
for _ in range(5):
    torch.mm(a, b)
torch.cuda.synchronize()
while time.time() < start_at:
    time.sleep(0.01)
n = 0
t0 = time.time()
while time.time() - t0 < secs:
    for _ in range(4):
        torch.mm(a, b)
    torch.cuda.synchronize()
    n += 4
print(f"rate={n / (time.time() - t0):.3f}")
